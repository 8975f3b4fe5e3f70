"""Train the shared SentencePiece model on the training split.

The settings are decided in DEVELOPERS.md (the Go tokenizer accepts only these):
BPE, identity normalisation, no dummy prefix, no whitespace removal, byte
fallback, pad=0 unk=1 bos=2 eos=3. One thread and no sampling keep it
deterministic: the same training split gives the same model file.

    python3 tokenizer.py --train ../.work/data/train.tsv --out ../.work/tokenizer.model
"""

import argparse
import os
import shutil
import tempfile

import sentencepiece as spm

from data import read_tsv

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3


def train_tokenizer(pairs, out_path, vocab_size=4000):
    """Train on both sides of pairs [(korean, english)] and write out_path."""
    with tempfile.TemporaryDirectory() as tmp:
        text = os.path.join(tmp, "text.txt")
        with open(text, "w", encoding="utf-8", newline="\n") as f:
            for ko, en in pairs:
                f.write(ko + "\n")
                f.write(en + "\n")
        # Relative paths: the trainer records them in the model file, and a
        # temporary folder's name would make every model file different.
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            _train("text.txt", "spm", vocab_size)
        finally:
            os.chdir(cwd)
        shutil.copyfile(os.path.join(tmp, "spm.model"), out_path)


def _train(text, prefix, vocab_size):
    spm.SentencePieceTrainer.train(
        input=text,
        model_prefix=prefix,
        model_type="bpe",
        vocab_size=vocab_size,
        character_coverage=0.9995,
        normalization_rule_name="identity",
        add_dummy_prefix=False,
        remove_extra_whitespaces=False,
        byte_fallback=True,
        pad_id=PAD_ID,
        unk_id=UNK_ID,
        bos_id=BOS_ID,
        eos_id=EOS_ID,
        input_sentence_size=0,
        shuffle_input_sentence=False,
        num_threads=1,
        max_sentence_length=8192,
        minloglevel=2,
    )


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", required=True, help="train.tsv from data.py")
    ap.add_argument("--out", required=True, help="where to write the .model file")
    ap.add_argument("--vocab-size", type=int, default=4000)
    args = ap.parse_args(argv)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    train_tokenizer(read_tsv(args.train), args.out, args.vocab_size)


if __name__ == "__main__":
    main()
