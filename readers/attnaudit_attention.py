"""pyarrow (and pandas): attention rows of an attnaudit run with the weights
as probabilities, whatever the precision it was stored at.

    import sys; sys.path.insert(0, "readers")
    from attnaudit_attention import read_attention
    table = read_attention("runs/ko-en-small-epoch0027-d2df05f0")  # a run folder or one part
    df = table.to_pandas()                                         # with pandas installed

The compact precision (the default) stores each weight w as 1 + w in the
column weights_plus_one (float32, exact: w is a multiple of 2^-14);
read_attention (or probabilities, on a table already read) puts
weights = weights_plus_one - 1, a list<float>, in its place. Tables of runs
stored as fixed, float32 or float16 already hold probabilities in weights
and pass through unchanged. Needs pyarrow only (no numpy)."""
import os

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

COMPACT = "weights_plus_one"
WEIGHTS_TYPE = pa.list_(pa.field("element", pa.float32(), nullable=False))


def probabilities(table):
    """table with its weights_plus_one column, if it has one, replaced by
    weights = weights_plus_one - 1 in the same place."""
    if COMPACT not in table.column_names:
        return table
    one = pa.scalar(1, pa.float32())
    chunks = [
        # offsets index the unsliced values, so a sliced chunk stays right
        pa.ListArray.from_arrays(c.offsets, pc.subtract(c.values, one), type=WEIGHTS_TYPE)
        for c in table.column(COMPACT).chunks
    ]
    i = table.column_names.index(COMPACT)
    return table.set_column(i, pa.field("weights", WEIGHTS_TYPE), pa.chunked_array(chunks, type=WEIGHTS_TYPE))


def read_attention(path, **kwargs):
    """pyarrow.parquet.read_table of a run folder's attention parts (or of
    one part file), with the weights as probabilities. kwargs go to
    read_table (columns=, filters=); ask for weights_plus_one, not weights,
    in columns= of a compact run."""
    if os.path.isdir(path):
        parts = sorted(f for f in os.listdir(path) if f.startswith("attention-") and f.endswith(".parquet"))
        if not parts:
            raise FileNotFoundError(f"{path}: no attention-*.parquet parts")
        path = [os.path.join(path, f) for f in parts]
    return probabilities(pq.read_table(path, **kwargs))
