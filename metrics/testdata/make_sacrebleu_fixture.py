#!/usr/bin/env python3
"""Writes sacrebleu_fixture.json (to stdout) from sacrebleu_pairs.tsv.

Each line of sacrebleu_pairs.tsv is `hypothesis<TAB>reference`. For every
pair the fixture holds sacreBLEU's sentence chrF (chrF2: 6 character
n-grams, no word n-grams) and sentence BLEU (13a tokens, exp smoothing,
effective order), the 13a tokens and the BLEU statistics; then corpus chrF
and corpus BLEU over all pairs. metrics/sacrebleu_test.go checks the Go
implementation against it to 0.01.

Run where sacrebleu is installed:

    python3 metrics/testdata/make_sacrebleu_fixture.py > metrics/testdata/sacrebleu_fixture.json
"""
import json
import os
import sys

import sacrebleu
from sacrebleu.metrics import BLEU, CHRF
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a


def main():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sacrebleu_pairs.tsv")
    hyps, refs = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            hyp, ref = line.split("\t")
            hyps.append(hyp)
            refs.append(ref)

    chrf = CHRF()  # char_order=6, word_order=0, beta=2: sacreBLEU's defaults
    sent_bleu = BLEU(effective_order=True)  # what sacrebleu.sentence_bleu uses
    corpus_bleu = BLEU()
    tok = Tokenizer13a()
    pairs = []
    for hyp, ref in zip(hyps, refs):
        b = sent_bleu.sentence_score(hyp, [ref])
        pairs.append({
            "hypothesis": hyp,
            "reference": ref,
            "chrf": chrf.sentence_score(hyp, [ref]).score,
            "bleu": b.score,
            "bleu_counts": list(b.counts),
            "bleu_totals": list(b.totals),
            "sys_len": b.sys_len,
            "ref_len": b.ref_len,
            "hyp_13a": tok(hyp.rstrip()),
            "ref_13a": tok(ref.rstrip()),
        })
    corpus_chrf = chrf.corpus_score(hyps, [refs]).score
    corpus_bleu_score = corpus_bleu.corpus_score(hyps, [refs]).score
    out = {
        "sacrebleu_version": sacrebleu.__version__,
        # signatures exist only once a metric has been evaluated
        "chrf_signature": str(chrf.get_signature()),
        "bleu_signature": str(corpus_bleu.get_signature()),
        "pairs": pairs,
        "corpus_chrf": corpus_chrf,
        "corpus_bleu": corpus_bleu_score,
    }
    json.dump(out, sys.stdout, ensure_ascii=False, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
