"""Deterministic train/valid/test split of ../shared/data/ko-en.

A pair's split is decided by a hash of its normalised English sentence, so a
news sentence and its North-Korean-norm variant (same English) always land in
the same split, and so does every Tatoeba translation of one English sentence.
About 90/5/5. Output: ``{train,valid,test}.tsv`` (``korean<TAB>english``, the
attnaudit dataset format) in the output folder; never commit it.

    python3 data.py --data ../../shared/data/ko-en --out ../.work/data
"""

import argparse
import hashlib
import os
import re
import sys
import unicodedata

SPLITS = ("train", "valid", "test")
# Percent buckets: [0, 90) train, [90, 95) valid, [95, 100) test.
VALID_FROM, TEST_FROM = 90, 95

# (folder, Korean file, English file) for the line-aligned corpora.
PARALLEL = (
    ("kpc-news", "korean-english-park.dev.ko", "korean-english-park.dev.en"),
    ("kpc-news", "korean-english-park.test.ko", "korean-english-park.test.en"),
    ("kpc-jhe", "jhe-koen-dev.ko", "jhe-koen-dev.en"),
    ("kpc-jhe", "jhe-koen-eval.ko", "jhe-koen-eval.en"),
    ("kpc-nk-news", "northkorean-english.dev.nk", "northkorean-english.dev.en"),
    ("kpc-nk-news", "northkorean-english.test.nk", "northkorean-english.test.en"),
)


def clean(text):
    """One line of text as it will be stored: no CR, no tabs, no outer spaces."""
    return text.replace("\r", "").replace("\t", " ").strip()


def normalise_english(text):
    """The split key: NFKC, lower case, whitespace collapsed."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text)).strip().lower()


def split_of(english):
    bucket = int.from_bytes(hashlib.sha256(normalise_english(english).encode("utf-8")).digest()[:8], "big") % 100
    if bucket < VALID_FROM:
        return "train"
    if bucket < TEST_FROM:
        return "valid"
    return "test"


def _read_lines(path):
    with open(path, encoding="utf-8", newline="") as f:
        return f.read().split("\n")


def read_pairs(data_dir):
    """Yield (corpus, korean, english) from every corpus, in a fixed order."""
    for line in _read_lines(os.path.join(data_dir, "tatoeba", "kor.txt")):
        fields = line.split("\t")
        if len(fields) >= 2:
            yield "tatoeba", clean(fields[1]), clean(fields[0])
    for folder, ko_name, en_name in PARALLEL:
        ko = _read_lines(os.path.join(data_dir, folder, ko_name))
        en = _read_lines(os.path.join(data_dir, folder, en_name))
        # A trailing newline leaves one empty last element in each.
        if ko and ko[-1] == "" and en and en[-1] == "":
            ko, en = ko[:-1], en[:-1]
        if len(ko) != len(en):
            raise ValueError(f"{folder}/{ko_name} has {len(ko)} lines, {en_name} has {len(en)}")
        for k, e in zip(ko, en):
            yield folder, clean(k), clean(e)


def split_pairs(data_dir):
    """{split: [(korean, english), ...]}, exact duplicate pairs dropped."""
    out = {s: [] for s in SPLITS}
    seen = set()
    for _, ko, en in read_pairs(data_dir):
        if not ko or not en or (ko, en) in seen:
            continue
        seen.add((ko, en))
        out[split_of(en)].append((ko, en))
    return out


def write_tsv(path, pairs):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for ko, en in pairs:
            f.write(f"{ko}\t{en}\n")


def read_tsv(path):
    pairs = []
    with open(path, encoding="utf-8", newline="") as f:
        for line in f.read().split("\n"):
            if line:
                ko, en = line.split("\t")
                pairs.append((ko, en))
    return pairs


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="the ko-en data folder")
    ap.add_argument("--out", required=True, help="folder for train/valid/test.tsv")
    args = ap.parse_args(argv)
    splits = split_pairs(args.data)
    os.makedirs(args.out, exist_ok=True)
    for name, pairs in splits.items():
        write_tsv(os.path.join(args.out, f"{name}.tsv"), pairs)
        print(f"{name}: {len(pairs)} pairs", file=sys.stderr)


if __name__ == "__main__":
    main()
