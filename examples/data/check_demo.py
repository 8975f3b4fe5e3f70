#!/usr/bin/env python3
"""Validate examples/data/demo.jsonl (python3 stdlib only).

Checks: every line is a JSON object, ids are unique, id/source/reference are
non-empty strings, no unknown keys, and each "alignment" is Pharaoh format
("i-j" sure, "i?j" or "ipj" possible; 0-based; i indexes whitespace-split
source words, j whitespace-split reference words) with indices in range and
no link given twice. Prints counts; exits 1 on any error.

Usage: python3 examples/data/check_demo.py [path]
"""
import json
import os
import re
import sys

LINK = re.compile(r"^(\d+)([-?p])(\d+)$")
KEYS = {"id", "source", "reference", "alignment", "label"}


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "demo.jsonl")
    errors = []
    ids = set()
    n = aligned = sure = possible = 0
    src_lens, ref_lens = [], []
    with open(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        print(f"{path}: bad UTF-8: {e}")
        return 1
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for lineno, line in enumerate(lines, 1):
        where = f"{path}:{lineno}"
        if not line.strip():
            errors.append(f"{where}: blank line")
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            errors.append(f"{where}: bad JSON: {e}")
            continue
        if not isinstance(obj, dict):
            errors.append(f"{where}: not a JSON object")
            continue
        extra = set(obj) - KEYS
        if extra:
            errors.append(f"{where}: unknown keys {sorted(extra)}")
        bad = False
        for k in ("id", "source", "reference"):
            v = obj.get(k)
            if not isinstance(v, str) or not v.strip():
                errors.append(f"{where}: {k!r} missing or empty")
                bad = True
            elif v != v.strip() or "  " in v or "\t" in v or "\n" in v:
                errors.append(f"{where}: {k!r} has stray whitespace")
        if bad:
            continue
        if obj["id"] in ids:
            errors.append(f"{where}: duplicate id {obj['id']!r}")
        ids.add(obj["id"])
        n += 1
        src = obj["source"].split()
        ref = obj["reference"].split()
        src_lens.append(len(src))
        ref_lens.append(len(ref))
        if "alignment" not in obj:
            continue
        al = obj["alignment"]
        if not isinstance(al, str) or not al.strip():
            errors.append(f"{where}: 'alignment' must be a non-empty string")
            continue
        aligned += 1
        seen = set()
        for tok in al.split():
            m = LINK.match(tok)
            if not m:
                errors.append(f"{where}: bad link {tok!r}")
                continue
            i, kind, j = int(m.group(1)), m.group(2), int(m.group(3))
            if i >= len(src):
                errors.append(f"{where}: link {tok}: source index {i} out of range (0..{len(src)-1})")
            if j >= len(ref):
                errors.append(f"{where}: link {tok}: reference index {j} out of range (0..{len(ref)-1})")
            if (i, j) in seen:
                errors.append(f"{where}: duplicate link {i},{j}")
            seen.add((i, j))
            if kind == "-":
                sure += 1
            else:
                possible += 1
    for e in errors:
        print(e)
    if n:
        print(f"pairs: {n}  aligned: {aligned}  links: {sure} sure, {possible} possible")
        print(f"source words: {min(src_lens)}..{max(src_lens)} (mean {sum(src_lens)/n:.1f})  "
              f"reference words: {min(ref_lens)}..{max(ref_lens)} (mean {sum(ref_lens)/n:.1f})")
        print(f"pairs with reference > 40 words: {sum(1 for x in ref_lens if x > 40)}")
    print("OK" if not errors else f"{len(errors)} error(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
