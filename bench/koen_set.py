#!/usr/bin/env python3
"""Writes an N-example Korean->English TSV (source<TAB>reference) from the
parallel data in ../shared/data/ko-en (Tatoeba, KPC news, JHE and North-Korean
news), for benchmarks at scale. Pairs are shuffled with a fixed seed, so the
same N gives the same file; N above the pairs available repeats them.
The data is not the project's to commit: write it outside the repository or
under an ignored folder.

    bench/koen_set.py 10000 /tmp/koen-10k.tsv [--data ../shared/data/ko-en]
"""
import argparse
import os
import random


def pairs(root):
    out = []
    with open(os.path.join(root, "tatoeba", "kor.txt"), encoding="utf-8") as f:
        for line in f:
            cols = line.rstrip("\n").split("\t")
            if len(cols) >= 2:
                out.append((cols[1], cols[0]))
    for folder, stem, ko in [("kpc-news", "korean-english-park.dev", "ko"), ("kpc-news", "korean-english-park.test", "ko"),
                             ("kpc-jhe", "jhe-koen-dev", "ko"), ("kpc-jhe", "jhe-koen-eval", "ko"),
                             ("kpc-nk-news", "northkorean-english.dev", "nk"), ("kpc-nk-news", "northkorean-english.test", "nk")]:
        base = os.path.join(root, folder, stem)
        with open(f"{base}.{ko}", encoding="utf-8") as fk, open(f"{base}.en", encoding="utf-8") as fe:
            out.extend(zip((l.rstrip("\n") for l in fk), (l.rstrip("\n") for l in fe)))
    clean = lambda s: " ".join(s.replace("\t", " ").split())
    return [(clean(k), clean(e)) for k, e in out if clean(k) and clean(e)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("n", type=int)
    ap.add_argument("out")
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "ko-en"))
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    ps = pairs(a.data)
    random.Random(a.seed).shuffle(ps)
    with open(a.out + ".tmp", "w", encoding="utf-8") as f:
        for i in range(a.n):
            k, e = ps[i % len(ps)]
            f.write(f"{k}\t{e}\n")
    os.replace(a.out + ".tmp", a.out)
    print(f"{a.out}: {a.n} examples from {len(ps)} pairs")


if __name__ == "__main__":
    main()
