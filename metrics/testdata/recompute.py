#!/usr/bin/env python3
"""Recomputes attnaudit's head metrics (SPEC §5) independently of the Go code.

Pure standard library. Input: a JSON file

    {"matrices": [{"name": str, "rows": int, "cols": int, "data": [float, ...]}, ...],
     "layers":   [{"name": str, "heads": [index into matrices, ...]}, ...]}

with each matrix row-major (one head's attention, rows = queries, padding
removed; for cross-attention the last column is the source EOS). Output (to
stdout): for every matrix its entropy, entropy_norm, confidence,
confidence_noeos, diagonality (g = 0.2), first_mass, last_mass, row_sum_err,
zero_rows, ign_src (λ = 0.2), wass_to_unif (the matrix as the only head,
with and without EOS); for every layer its head_diversity. Values that are
undefined are null.

    python3 metrics/testdata/recompute.py metrics/testdata/recompute_matrices.json \
        > metrics/testdata/recompute_expected.json

metrics/recompute_test.go compares the Go functions with the committed
output to 1e-4. To audit a real run, dump matrices from attention.parquet
into this format and compare with head_metrics.parquet.
"""
import json
import math
import sys

G = 0.2
LAMBDA = 0.2


def rows_of(m):
    r, c, d = m["rows"], m["cols"], m["data"]
    return [d[i * c:(i + 1) * c] for i in range(r)]


def mean(xs):
    return sum(xs) / len(xs) if xs else None


def entropy(rows):
    if not rows or not rows[0]:
        return None
    return mean([-sum(a * math.log(a) for a in row if a > 0) for row in rows])


def metrics(m):
    rows = rows_of(m)
    n_q, n_k = m["rows"], m["cols"]
    out = {"name": m["name"]}
    if n_q == 0 or n_k == 0:
        return out
    h = entropy(rows)
    out["entropy"] = h
    out["entropy_norm"] = h / math.log(n_k) if n_k > 1 else None
    out["confidence"] = mean([max(row) for row in rows])
    out["confidence_noeos"] = mean([max(row[:-1]) for row in rows]) if n_k > 1 else None
    penalty = []
    for t, row in enumerate(rows):
        u = (t + 0.5) / n_q
        s = 0.0
        for j, a in enumerate(row):
            v = (j + 0.5) / n_k
            s += a * (1 - math.exp(-((u - v) ** 2) / (2 * G * G)))
        penalty.append(s)
    out["diagonality"] = 1 - mean(penalty)
    out["first_mass"] = mean([row[0] for row in rows])
    out["last_mass"] = mean([row[-1] for row in rows])
    out["row_sum_err"] = max(abs(sum(row) - 1) for row in rows)
    out["zero_rows"] = sum(1 for row in rows if all(a == 0 for a in row))
    if n_k > 1:
        incoming = [sum(row[j] for row in rows) for j in range(n_k - 1)]
        out["ign_src"] = sum(1 for x in incoming if x < LAMBDA) / (n_k - 1)
    pi = [sum(row[j] for row in rows) / n_q for j in range(n_k)]
    out["wass_to_unif"] = 0.5 * sum(abs(p - 1 / n_k) for p in pi)
    if n_k > 1:
        z = sum(pi[:-1])
        if z > 0:
            pe = [p / z for p in pi[:-1]]
            out["wass_to_unif_noeos"] = 0.5 * sum(abs(p - 1 / len(pe)) for p in pe)
    return out


def js(p, q):
    s = 0.0
    for a, b in zip(p, q):
        mid = (a + b) / 2
        if a > 0:
            s += a * math.log(a / mid)
        if b > 0:
            s += b * math.log(b / mid)
    return s / 2


def head_diversity(heads):
    pairs = []
    for i in range(len(heads)):
        for k in range(i + 1, len(heads)):
            ri, rk = rows_of(heads[i]), rows_of(heads[k])
            pairs.append(mean([js(a, b) for a, b in zip(ri, rk)]))
    return mean(pairs)


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        doc = json.load(f)
    mats = doc["matrices"]
    out = {
        "matrices": [metrics(m) for m in mats],
        "layers": [{"name": l["name"], "head_diversity": head_diversity([mats[i] for i in l["heads"]])}
                   for l in doc.get("layers", [])],
    }
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
