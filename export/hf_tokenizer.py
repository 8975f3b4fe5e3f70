"""The tokenizer of a Hugging Face translation checkpoint, as files attnaudit's
Go side reads: Hugging Face `tokenizer.json` (read there by the Rust
`tokenizers` crate, the same code as Python's fast tokenizers) plus, where the
model's own tokenizer maps SentencePiece pieces to ids through a vocab.json
(MarianTokenizer, M2M100Tokenizer), that vocab.json.

Per family (checkpoint.json's "tokenizer" object records which files hold what):

- marian: no fast tokenizer exists. `spm_tokenizer_json` converts source.spm
  and target.spm (unigram) into tokenizer.json and target_tokenizer.json:
  the spm's pieces and scores, its normaliser (the precompiled charsmap of
  nmt_nfkc, whitespace stripped and collapsed, dummy prefix, ▁ for spaces)
  and its decoder. They give the pieces; vocab.json maps a piece to the
  model's id, <unk>'s id when the piece is not there (MarianTokenizer's
  `_convert_token_to_id`).
- m2m100: the same with sentencepiece.bpe.model (BPE: merges read from the
  spm with transformers' SentencePieceExtractor) and vocab.json; language
  tokens come from the tokenizer's `lang_token_to_id`.
- nllb, mbart50: transformers' own slow-to-fast converter (or the folder's
  tokenizer.json, as the fast tokenizer saved it); its ids are the model's.

Special tokens (language codes, EOS) are not in these files' post-processor
but in checkpoint.json as id lists (source prefix and suffix, target prefix),
read off the model's own tokenizer: attnaudit encodes the text without
special tokens and adds them.
"""

import json

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
from tokenizers import AddedToken

SPM_SPECIALS = ("<unk>", "<s>", "</s>", "<pad>")


def _load_proto(spm_file):
    from transformers.utils import sentencepiece_model_pb2 as pb
    proto = pb.ModelProto()
    with open(spm_file, "rb") as f:
        proto.ParseFromString(f.read())
    return proto


def spm_tokenizer_json(spm_file, specials=()):
    """A tokenizers.Tokenizer that splits text into exactly the pieces
    SentencePiece gives (ids are the spm's). Unigram and BPE models; refuses
    settings it does not reproduce."""
    proto = _load_proto(spm_file)
    trainer, norm = proto.trainer_spec, proto.normalizer_spec
    if trainer.treat_whitespace_as_suffix:
        raise ValueError(f"{spm_file}: treat_whitespace_as_suffix is not supported")
    if not norm.escape_whitespaces:
        raise ValueError(f"{spm_file}: escape_whitespaces=false is not supported")
    if proto.denormalizer_spec.precompiled_charsmap:
        raise ValueError(f"{spm_file}: a denormalizer charsmap is not supported")
    byte_fallback = trainer.byte_fallback
    if trainer.model_type == 1:  # UNIGRAM
        vocab = [(p.piece, p.score) for p in proto.pieces]
        model = models.Unigram(vocab, unk_id=trainer.unk_id, byte_fallback=byte_fallback)
    elif trainer.model_type == 2:  # BPE
        from transformers.convert_slow_tokenizer import SentencePieceExtractor
        vocab, merges = SentencePieceExtractor(spm_file).extract()
        model = models.BPE(vocab, merges, unk_token=proto.pieces[trainer.unk_id].piece,
                           fuse_unk=True, byte_fallback=byte_fallback)
    else:
        raise ValueError(f"{spm_file}: model_type {trainer.model_type} is not supported (unigram and BPE are)")
    tok = Tokenizer(model)
    steps = []
    if norm.precompiled_charsmap:
        steps.append(normalizers.Precompiled(norm.precompiled_charsmap))
    if norm.remove_extra_whitespaces:
        steps += [normalizers.Strip(left=True, right=True), normalizers.Replace(Regex(" {2,}"), " ")]
    if steps:
        tok.normalizer = normalizers.Sequence(steps)
    prepend = "always" if norm.add_dummy_prefix else "never"
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme=prepend, split=False)
    dec = [decoders.Replace("▁", " ")]
    if byte_fallback:
        dec.append(decoders.ByteFallback())
    dec.append(decoders.Fuse())
    if norm.add_dummy_prefix:
        dec.append(decoders.Strip(content=" ", left=1, right=0))
    tok.decoder = decoders.Sequence(dec)
    # The slow tokenizer's special tokens written in the text are these
    # tokens: it splits them out before SentencePiece.
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    return tok


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False)
        f.write("\n")
