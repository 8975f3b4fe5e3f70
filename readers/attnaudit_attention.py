"""pyarrow (and pandas): attention rows of an attnaudit run with the weights
as probabilities, whatever the precision it was stored at.

    import sys; sys.path.insert(0, "readers")
    from attnaudit_attention import read_attention
    table = read_attention("runs/ko-en-small-epoch0027-d2df05f0")  # a run folder or one part
    df = table.to_pandas()                                         # with pandas installed

The packed precision (the default) stores each weight w as 1 + w in the
column weights_packed, row by row, without what can be restored exactly
(docs/storage.md): a causal matrix's zeros after the diagonal (kind
decoder_self, q_len = k_len) and, in a matrix whose rows sum to exactly 1,
each row's last kept weight (1 minus the row's others). The compact
precision (the default before packed) stores 1 + w for every weight in
weights_plus_one. read_attention (or probabilities, on a table already
read) puts weights, a list<float> of q_len * k_len probabilities in row
order, in the stored column's place. Tables of runs stored as fixed,
float32 or float16 already hold probabilities in weights and pass through
unchanged. Needs pyarrow only (no numpy)."""
import os

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

PACKED = "weights_packed"
COMPACT = "weights_plus_one"
WEIGHTS_TYPE = pa.list_(pa.field("element", pa.float32(), nullable=False))
# a balanced row's weights are multiples of 2^-30: as integers of that
# unit their sums are exact
UNIT = 2.0 ** 30


def _i64(a):
    return pc.cast(a, pa.int64())


def _ones(n):
    return pa.nulls(n, pa.int64()).fill_null(1)


def _unpack(kind, q, k, lists):
    """The weights of one chunk of a packed table: kind, q_len and k_len
    arrays, and weights_packed, a list<float> array of 1 + w values."""
    if pa.types.is_dictionary(kind.type):
        kind = kind.dictionary_decode()
    q, k = _i64(q), _i64(k)
    n = _i64(pc.list_value_length(lists))
    square = pc.and_(pc.equal(kind, "decoder_self"), pc.equal(q, k))
    full = pc.equal(n, pc.multiply(q, k))
    tri_n = pc.divide(pc.multiply(q, pc.add(q, 1)), 2)
    tri_drop_n = pc.divide(pc.multiply(q, pc.subtract(q, 1)), 2)
    drop_n = pc.multiply(q, pc.subtract(k, 1))
    tri = pc.and_(pc.invert(full), square)
    drop = pc.and_(pc.invert(full), pc.if_else(square, pc.equal(n, tri_drop_n), pc.equal(n, drop_n)))
    fits = pc.or_(full, pc.if_else(square, pc.or_(pc.equal(n, tri_n), pc.equal(n, tri_drop_n)), pc.equal(n, drop_n)))
    if not pc.all(fits).as_py():
        i = pc.index(fits, False).as_py()
        raise ValueError(f"{PACKED} holds {n[i]} values in row {i}, which fits no layout of a "
                         f"{q[i]} x {k[i]} {kind[i]} matrix")

    # stored values as weights, and their running sum in units of 2^-30
    # (exact integers) over the balanced matrices
    flat = lists.flatten()
    base = lists.offsets[0].as_py()
    in_start = pc.subtract(_i64(lists.offsets[:-1]), base)
    w_in = pc.subtract(flat, pa.scalar(1, pa.float32()))
    parent_in = pc.list_parent_indices(lists)
    units = pc.cast(pc.multiply(pc.cast(w_in, pa.float64()), UNIT), pa.int64(), safe=False)
    units = pc.if_else(pc.take(drop, parent_in), units, 0)
    running = pa.concat_arrays([pa.array([0], pa.int64()), pc.cumulative_sum(units)])

    # every output weight: its matrix, row t and column j
    size = pc.multiply(q, k)
    total = pc.sum(size).as_py() or 0
    out_offsets = pa.concat_arrays([pa.array([0], pa.int64()), pc.cumulative_sum(size)])
    parent = pc.list_parent_indices(pa.LargeListArray.from_arrays(out_offsets, pa.nulls(total, pa.int8())))
    e = pc.subtract(pc.subtract(pc.cumulative_sum(_ones(total)), 1), pc.take(out_offsets, parent))
    kk, tt, dd = pc.take(k, parent), pc.take(tri, parent), pc.take(drop, parent)
    t = pc.divide(e, kk)
    j = pc.subtract(e, pc.multiply(t, kk))
    row_start = pc.if_else(
        tt,
        pc.subtract(pc.divide(pc.multiply(t, pc.add(t, 1)), 2), pc.if_else(dd, t, 0)),
        pc.multiply(t, pc.subtract(kk, pc.if_else(dd, 1, 0))))
    row_at = pc.add(pc.take(in_start, parent), row_start)
    future = pc.and_(tt, pc.greater(j, t))
    last = pc.if_else(tt, t, pc.subtract(kk, 1))
    restored = pc.and_(dd, pc.equal(j, last))
    stored = pc.invert(pc.or_(future, restored))
    # weights as stored (a dummy index, past the values, where none is)
    padded = pa.concat_arrays([w_in, pa.array([0], pa.float32())])
    w = pc.take(padded, pc.if_else(stored, pc.add(row_at, j), len(w_in)))
    # the left-out weight: 1 minus the row's j stored weights before it
    others = pc.subtract(pc.take(running, pc.if_else(restored, pc.add(row_at, j), 0)),
                         pc.take(running, pc.if_else(restored, row_at, 0)))
    left_out = pc.cast(pc.subtract(1.0, pc.divide(pc.cast(others, pa.float64()), UNIT)), pa.float32())
    w = pc.if_else(future, pa.scalar(0, pa.float32()), pc.if_else(restored, left_out, w))
    return pa.ListArray.from_arrays(pc.cast(out_offsets, pa.int32()), w, type=WEIGHTS_TYPE)


def probabilities(table):
    """table with its weights_packed or weights_plus_one column, if it has
    one, replaced by weights (probabilities, q_len * k_len each) in the
    same place. A packed table needs its kind, q_len and k_len columns."""
    if PACKED in table.column_names:
        missing = [c for c in ("kind", "q_len", "k_len") if c not in table.column_names]
        if missing:
            raise ValueError(f"{PACKED} needs the columns {', '.join(missing)} to be read as probabilities")
        # record batches hold every column over the same rows
        chunks = [_unpack(b.column("kind"), b.column("q_len"), b.column("k_len"), b.column(PACKED))
                  for b in table.to_batches()]
        i = table.column_names.index(PACKED)
        return table.set_column(i, pa.field("weights", WEIGHTS_TYPE), pa.chunked_array(chunks, type=WEIGHTS_TYPE))
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
    read_table (columns=, filters=); ask for weights_packed (with kind,
    q_len and k_len) or weights_plus_one, not weights, in columns= of a
    packed or compact run."""
    if os.path.isdir(path):
        parts = sorted(f for f in os.listdir(path) if f.startswith("attention-") and f.endswith(".parquet"))
        if not parts:
            raise FileNotFoundError(f"{path}: no attention-*.parquet parts")
        path = [os.path.join(path, f) for f in parts]
    return probabilities(pq.read_table(path, **kwargs))
