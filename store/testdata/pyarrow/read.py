"""Reads attention parts with pyarrow alone, as a user would, for store's
tests: argv[1] is a folder of attention-*.parquet parts. Prints JSON: the
row count, the column types as stored, the weights type and the weights of
the first row as readers/attnaudit_attention.py gives them (probabilities
at every precision), and the largest |sum of a query row - 1| over every
matrix; with a second argument "all", every row's weights too (NaN as
the string "NaN")."""
import json
import os
import sys

import pyarrow.parquet as pq

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "readers"))
from attnaudit_attention import read_attention  # noqa: E402

stored = pq.read_table(sys.argv[1])  # a folder: every part; hidden temporary files are ignored
table = read_attention(sys.argv[1])
rows = table.to_pylist()
worst = 0.0
for r in rows:
    w, k = r["weights"], r["k_len"]
    for q in range(r["q_len"]):
        worst = max(worst, abs(sum(float(x) for x in w[q * k:(q + 1) * k]) - 1))
out = {
    "pyarrow": __import__("pyarrow").__version__,
    "rows": table.num_rows,
    "types": {f.name: str(f.type) for f in stored.schema},
    "weights": str(table.schema.field("weights").type),
    "columns": table.column_names,
    "first": [float(x) for x in rows[0]["weights"][:3]],
    "max_row_sum_err": worst,
}
if sys.argv[2:] == ["all"]:
    out["all"] = [[x if x == x else "NaN" for x in r["weights"]] for r in rows]
print(json.dumps(out))
