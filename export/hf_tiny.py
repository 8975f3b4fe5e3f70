"""Tiny randomly initialised Hugging Face translation models, saved as a
user's fine-tuned checkpoint would be (`save_pretrained` of the model and of
its tokenizer), for the tests of export_hf.py and of attnaudit's Go side.

    hf_tiny.py --data ../shared/data/ko-en --out DIR [--family marian ...]

writes DIR/<family>/ for each family:

- marian: MarianMTModel; SentencePiece unigram source.spm (Korean) and
  target.spm (English) with nmt_nfkc normalisation, and a vocab.json that
  maps the pieces of both to the model's ids (as opus-mt models ship them);
- m2m100: M2M100ForConditionalGeneration; one SentencePiece BPE model of
  both languages, vocab.json, the 100 language tokens (__ko__, __en__);
- nllb: the M2M100 architecture with NllbTokenizerFast (SentencePiece BPE,
  fairseq's id offset, kor_Hang / eng_Latn), as NLLB checkpoints are;
- mbart50: MBartForConditionalGeneration with MBart50TokenizerFast
  (ko_KR / en_XX).

The tokenizers are trained here on the ko-en data (one thread, no sampling
of input sentences: the same data gives the same files). The models are
small (d_model 32, 2 + 2 layers, 4 heads) and seeded; init_std is larger than
the default so that the random attention is far from uniform.
"""

import argparse
import json
import os
import sys
import tempfile

import sentencepiece as spm
import torch

FAMILIES = ("marian", "m2m100", "nllb", "mbart50")


def read_corpus(data):
    """Korean and English lines of the ko-en data (SPEC §8)."""
    ko, en = [], []
    for sub in sorted(os.listdir(data)):
        folder = os.path.join(data, sub)
        if not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            path = os.path.join(folder, name)
            with open(path, encoding="utf-8", newline="\n") as f:
                lines = f.read().split("\n")
            if name == "kor.txt":
                for line in lines:
                    cols = line.split("\t")
                    if len(cols) >= 2:
                        en.append(cols[0])
                        ko.append(cols[1])
            elif name.endswith((".ko", ".nk")):
                ko.extend(lines)
            elif name.endswith(".en"):
                en.extend(lines)
    ko = [s for s in ko if s.strip()]
    en = [s for s in en if s.strip()]
    if not ko or not en:
        raise SystemExit(f"{data}: no Korean or English lines found")
    return ko, en


def train_spm(lines, prefix, model_type, vocab, **extra):
    """A SentencePiece model with the library's defaults (nmt_nfkc, dummy
    prefix, whitespace removal), as the families' own tokenizers were made."""
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=".txt", delete=False) as f:
        f.write("\n".join(s.replace("\n", " ") for s in lines) + "\n")
        text = f.name
    try:
        spm.SentencePieceTrainer.train(
            input=text, model_prefix=prefix, model_type=model_type, vocab_size=vocab,
            character_coverage=0.9995, num_threads=1, input_sentence_size=0,
            shuffle_input_sentence=False, minloglevel=2, **extra)
    finally:
        os.remove(text)
    return prefix + ".model"


def pieces(model_file):
    sp = spm.SentencePieceProcessor(model_file=model_file)
    return [sp.id_to_piece(i) for i in range(sp.get_piece_size())]


def small(config_cls, **kw):
    base = dict(d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64,
                max_position_embeddings=256, init_std=0.3, dropout=0.0, attention_dropout=0.0,
                activation_dropout=0.0)
    base.update(kw)
    return config_cls(**base)


def vocab_size(tok):
    """Every id the tokenizer gives: M2M100's language tokens and its
    "made-up words" come after its vocabulary, as in facebook/m2m100_418M."""
    ids = list(tok.get_vocab().values()) + list(getattr(tok, "lang_token_to_id", {}).values())
    return max(ids) + 1 + getattr(tok, "num_madeup_words", 0)


def save(model, tokenizer, out, seed):
    torch.manual_seed(seed)
    model = model()
    model.eval()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def build_marian(ko, en, out, work):
    from transformers import MarianConfig, MarianMTModel, MarianTokenizer
    src = train_spm(ko, os.path.join(work, "source"), "unigram", 2000)
    tgt = train_spm(en, os.path.join(work, "target"), "unigram", 1000)
    # opus-mt's vocab.json: </s> 0, <unk> 1, the pieces of both models, <pad> last.
    vocab = {"</s>": 0, "<unk>": 1}
    for p in pieces(src) + pieces(tgt):
        if p not in vocab and p not in ("<s>", "<pad>"):
            vocab[p] = len(vocab)
    vocab["<pad>"] = len(vocab)
    vocab_file = os.path.join(work, "vocab.json")
    with open(vocab_file, "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    tok = MarianTokenizer(src, tgt, vocab_file, source_lang="ko", target_lang="en")
    pad = vocab["<pad>"]
    cfg = small(MarianConfig, vocab_size=len(vocab), pad_token_id=pad, eos_token_id=0,
                decoder_start_token_id=pad, forced_eos_token_id=0, bad_words_ids=[[pad]],
                scale_embedding=True, share_encoder_decoder_embeddings=True)
    save(lambda: MarianMTModel(cfg), tok, out, 1)


def build_m2m100(ko, en, out, work):
    from transformers import M2M100Config, M2M100ForConditionalGeneration, M2M100Tokenizer
    model_file = train_spm(ko + en, os.path.join(work, "spm"), "bpe", 3000)
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for p in pieces(model_file):
        if p not in vocab:
            vocab[p] = len(vocab)
    vocab_file = os.path.join(work, "vocab.json")
    with open(vocab_file, "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    tok = M2M100Tokenizer(vocab_file, model_file, src_lang="ko", tgt_lang="en")
    cfg = small(M2M100Config, vocab_size=vocab_size(tok), pad_token_id=1, bos_token_id=0, eos_token_id=2,
                decoder_start_token_id=2, forced_eos_token_id=2, scale_embedding=True)
    save(lambda: M2M100ForConditionalGeneration(cfg), tok, out, 2)


def build_nllb(ko, en, out, work):
    from transformers import M2M100Config, M2M100ForConditionalGeneration, NllbTokenizer, NllbTokenizerFast
    # NLLB's model: unk 0, <s> 1, </s> 2, no pad; the tokenizer adds fairseq's offset.
    model_file = train_spm(ko + en, os.path.join(work, "sentencepiece.bpe"), "bpe", 3000,
                           byte_fallback=False)
    slow = NllbTokenizer(model_file, src_lang="kor_Hang", tgt_lang="eng_Latn")
    slow.save_pretrained(os.path.join(work, "slow"))
    tok = NllbTokenizerFast.from_pretrained(os.path.join(work, "slow"), src_lang="kor_Hang", tgt_lang="eng_Latn")
    cfg = small(M2M100Config, vocab_size=vocab_size(tok), pad_token_id=1, bos_token_id=0, eos_token_id=2,
                decoder_start_token_id=2, forced_eos_token_id=2, scale_embedding=True)
    save(lambda: M2M100ForConditionalGeneration(cfg), tok, out, 3)


def build_mbart50(ko, en, out, work):
    from transformers import MBart50Tokenizer, MBart50TokenizerFast, MBartConfig, MBartForConditionalGeneration
    model_file = train_spm(ko + en, os.path.join(work, "sentencepiece.bpe"), "bpe", 3000)
    slow = MBart50Tokenizer(model_file, src_lang="ko_KR", tgt_lang="en_XX")
    slow.save_pretrained(os.path.join(work, "slow"))
    tok = MBart50TokenizerFast.from_pretrained(os.path.join(work, "slow"), src_lang="ko_KR", tgt_lang="en_XX")
    cfg = small(MBartConfig, vocab_size=vocab_size(tok), pad_token_id=1, bos_token_id=0, eos_token_id=2,
                decoder_start_token_id=2, forced_eos_token_id=2, scale_embedding=True)
    save(lambda: MBartForConditionalGeneration(cfg), tok, out, 4)


BUILDERS = {"marian": build_marian, "m2m100": build_m2m100, "nllb": build_nllb, "mbart50": build_mbart50}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="the ko-en data folder (../shared/data/ko-en)")
    ap.add_argument("--out", required=True, help="one subfolder per family is written here")
    ap.add_argument("--family", action="append", choices=FAMILIES, help="default: all")
    args = ap.parse_args(argv)
    ko, en = read_corpus(args.data)
    for family in args.family or FAMILIES:
        out = os.path.join(args.out, family)
        with tempfile.TemporaryDirectory() as work:
            BUILDERS[family](ko, en, out, work)
        print(f"{family}: {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
