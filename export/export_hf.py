"""Export a local Hugging Face translation checkpoint to attnaudit's
checkpoint contract 2 (docs/contract2.md, docs/huggingface.md).

    export_hf.py MODEL_DIR OUT_DIR [--src-lang ko --tgt-lang en]

MODEL_DIR is what `save_pretrained` wrote (config.json, the weights, the
tokenizer's files): a fine-tuned MarianMT (opus-mt), M2M100, NLLB or
mBART-50 model. OUT_DIR gets encoder_model.onnx, decoder_model.onnx and
decoder_with_past_model.onnx (Optimum's names, plus every attention output),
the tokenizer as attnaudit reads it (hf_tokenizer.py), checkpoint.json with
the generation settings (decoder start, forced BOS = the target language,
suppressed tokens, max positions) and parity.json (PyTorch decoding with its
own cache, for the Go parity test). Other architectures are refused, naming
what is missing.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile

import onnx
import torch
import transformers
from torch import nn

import hf_tokenizer

OPSET = 17
PARITY_ATOL = 1e-4
PARITY_PAIRS = (
    ("나는 학교에 간다.", "I go to school."),
    ("안녕.", "Hi."),
    ("고마워요, 정말로 고마워요!", "Thank you, really!"),
)

# model_type → the families of it export_hf.py reads, by tokenizer class.
FAMILIES = {
    "marian": {"MarianTokenizer": "marian"},
    "m2m_100": {"M2M100Tokenizer": "m2m100", "NllbTokenizer": "nllb", "NllbTokenizerFast": "nllb"},
    "mbart": {"MBart50Tokenizer": "mbart50", "MBart50TokenizerFast": "mbart50"},
}
# Language codes each multilingual family writes for a two-letter code.
LANG_CODES = {
    "m2m100": {},
    "nllb": {"ko": "kor_Hang", "en": "eng_Latn", "ja": "jpn_Jpan", "zh": "zho_Hans", "fr": "fra_Latn", "de": "deu_Latn"},
    "mbart50": {"ko": "ko_KR", "en": "en_XX", "ja": "ja_XX", "zh": "zh_CN", "fr": "fr_XX", "de": "de_DE"},
}


class UnsupportedModel(Exception):
    pass


def detect_family(model_dir):
    """The family of a checkpoint folder, or UnsupportedModel naming what is missing."""
    cfg_path = os.path.join(model_dir, "config.json")
    if not os.path.exists(cfg_path):
        raise UnsupportedModel(f"{model_dir}: config.json missing (not a save_pretrained folder)")
    with open(cfg_path, encoding="utf-8") as f:
        cfg = json.load(f)
    model_type = cfg.get("model_type")
    if model_type not in FAMILIES:
        raise UnsupportedModel(
            f"{cfg_path}: model_type {model_type!r} is not supported; export_hf.py exports "
            "marian (MarianMT, opus-mt), m2m_100 (M2M100, NLLB) and mbart (mBART-50) encoder-decoders")
    tok_cfg_path = os.path.join(model_dir, "tokenizer_config.json")
    tok_class = None
    if os.path.exists(tok_cfg_path):
        with open(tok_cfg_path, encoding="utf-8") as f:
            tok_class = json.load(f).get("tokenizer_class")
    if tok_class not in FAMILIES[model_type]:
        raise UnsupportedModel(
            f"{model_dir}: tokenizer_class {tok_class!r} with model_type {model_type!r} is not supported; "
            f"it needs one of {', '.join(FAMILIES[model_type])} (save the tokenizer with save_pretrained next to the model)")
    return FAMILIES[model_type][tok_class]


def lang_code(family, lang):
    return LANG_CODES.get(family, {}).get(lang, lang)


def load_tokenizer(model_dir, family, src_lang, tgt_lang):
    kw = {}
    if family != "marian":
        kw = {"src_lang": lang_code(family, src_lang), "tgt_lang": lang_code(family, tgt_lang)}
    tok = transformers.AutoTokenizer.from_pretrained(model_dir, **kw)
    if family != "marian":
        for side in ("src_lang", "tgt_lang"):
            code = kw[side]
            if tok.convert_tokens_to_ids(_lang_token(family, code)) in (None, tok.unk_token_id):
                raise UnsupportedModel(f"{model_dir}: {side} {code!r} is not a language of this tokenizer")
    return tok


def _lang_token(family, code):
    return f"__{code}__" if family == "m2m100" else code


def _affixes(with_special, without, what):
    """The ids the tokenizer adds before and after the text's own."""
    n = len(without)
    for start in range(len(with_special) - n + 1):
        if with_special[start:start + n] == without:
            return with_special[:start], with_special[start + n:]
    raise UnsupportedModel(f"the tokenizer's {what} ids {with_special} do not contain its text ids {without}")


def special_ids(tok):
    """Source prefix/suffix and target prefix ids, read off the tokenizer's own output."""
    sample = "안녕하세요 세계"
    src_prefix, src_suffix = _affixes(tok(sample).input_ids, tok(sample, add_special_tokens=False).input_ids, "source")
    tgt_with = tok(text_target=sample).input_ids
    with tok.as_target_tokenizer() if hasattr(tok, "as_target_tokenizer") else _nothing():
        tgt_without = tok(sample, add_special_tokens=False).input_ids
    tgt_prefix, tgt_suffix = _affixes(tgt_with, tgt_without, "target")
    if tgt_suffix != [tok.eos_token_id]:
        raise UnsupportedModel(f"the tokenizer ends a target with {tgt_suffix}, not EOS {tok.eos_token_id}")
    return src_prefix, src_suffix, tgt_prefix


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def write_tokenizer(tok, family, model_dir, out_dir):
    """The tokenizer files and checkpoint.json's "tokenizer" object."""
    src_prefix, src_suffix, tgt_prefix = special_ids(tok)
    spec = {"kind": "huggingface", "family": family, "source": "tokenizer.json",
            "unk_id": tok.unk_token_id, "source_prefix": src_prefix, "source_suffix": src_suffix,
            "target_prefix": tgt_prefix,
            # Decoding drops the special tokens and the language tokens: a
            # hypothesis is the translation without its language tag.
            "special_ids": sorted(set(tok.all_special_ids) | set(src_prefix) | set(tgt_prefix)),
            # The SentencePiece-backed slow tokenizers strip the decoded text.
            "decode_strip": family in ("marian", "m2m100")}
    specials = tok.all_special_tokens
    if family == "marian":
        for side, spm_name in (("source", "source.spm"), ("target", "target.spm")):
            spm_file = os.path.join(model_dir, spm_name)
            name = "tokenizer.json" if side == "source" else "target_tokenizer.json"
            hf_tokenizer.spm_tokenizer_json(spm_file, specials).save(os.path.join(out_dir, name))
            shutil.copyfile(spm_file, os.path.join(out_dir, spm_name))
            spec[side] = name
            spec[side + "_spm"] = spm_name
        spec["vocab"] = "vocab.json"
        if getattr(tok, "separate_vocabs", False):
            raise UnsupportedModel(f"{model_dir}: Marian with separate source and target vocabularies is not supported")
    elif family == "m2m100":
        hf_tokenizer.spm_tokenizer_json(os.path.join(model_dir, "sentencepiece.bpe.model"), specials).save(
            os.path.join(out_dir, "tokenizer.json"))
        spec["vocab"] = "vocab.json"
    else:
        if not tok.is_fast:
            tok = transformers.convert_slow_tokenizer.convert_slow_tokenizer(tok)
            tok.save(os.path.join(out_dir, "tokenizer.json"))
        else:
            tok.backend_tokenizer.save(os.path.join(out_dir, "tokenizer.json"))
    if "vocab" in spec:
        # Piece → id as the tokenizer converts them (M2M100's language
        # tokens are outside get_vocab()).
        vocab = {**tok.get_vocab(), **getattr(tok, "lang_token_to_id", {})}
        hf_tokenizer.write_json(os.path.join(out_dir, "vocab.json"), vocab)
    return spec


def _no_fsdp():
    """M2M100's layerdrop check asks whether the module is FSDP-managed,
    which imports torch.distributed.fsdp; Debian's torch 1.13 cannot import
    it under Python 3.11 (a dataclass with a mutable default). Nothing here
    is FSDP-managed, so answer without importing it."""
    import transformers.generation.utils as generation
    import transformers.models.m2m_100.modeling_m2m_100 as m2m
    for mod in (m2m, generation):
        if hasattr(mod, "is_fsdp_managed_module"):
            mod.is_fsdp_managed_module = lambda module: False


def load_model(model_dir):
    _no_fsdp()
    try:
        model = transformers.AutoModelForSeq2SeqLM.from_pretrained(model_dir, attn_implementation="eager")
    except TypeError:
        model = transformers.AutoModelForSeq2SeqLM.from_pretrained(model_dir)
    model.eval()
    model.config.use_cache = True
    return model


def _layers(cache):
    """Per layer (self key, self value, cross key, cross value) from either cache type."""
    if hasattr(cache, "to_legacy_cache"):
        cache = cache.to_legacy_cache()
    return [tuple(layer) for layer in cache]


def head_value_norms(attn, x):
    """||f_h(x_j)|| for every head h and position j of x: the norm of what x_j
    adds to head h's output per unit of attention, f_h(x) = (x W_V + b_V)_h
    W_O,h (Kobayashi et al. 2020; the output bias is added once per query,
    so it is left out), as export/model.py's head_value_norms. attn: a
    transformers attention module (v_proj, out_proj); x: [batch, len,
    d_model] -> [batch, heads, len]."""
    v = attn.v_proj(x)
    b, n, d = v.shape
    heads = attn.num_heads
    hd = d // heads
    v = v.view(b, n, heads, hd).transpose(1, 2)
    w = attn.out_proj.weight  # [d_model, d_model]; head h reads columns h*hd...
    return torch.stack([torch.matmul(v[:, h], w[:, h * hd:(h + 1) * hd].t()).norm(dim=-1)
                        for h in range(heads)], dim=1)


def value_norms(model, hidden_states, last_hidden_state):
    """The contract's optional value-vector norms (docs/contract2.md):
    encoder_value_norms of every encoder layer's self-attention, over that
    layer's attention input (the layer input, after self_attn_layer_norm in
    the pre-norm families M2M100, NLLB and mBART-50; Marian normalises
    after), and cross_value_norms of every decoder layer's cross-attention
    over the encoder output. hidden_states are the encoder's per-layer
    inputs (output_hidden_states). Each [layers, batch, heads, src_len]."""
    pre_norm = model.config.model_type != "marian"
    enc = []
    for i, layer in enumerate(model.get_encoder().layers):
        x = hidden_states[i]
        enc.append(head_value_norms(layer.self_attn, layer.self_attn_layer_norm(x) if pre_norm else x))
    cross = [head_value_norms(layer.encoder_attn, last_hidden_state) for layer in model.get_decoder().layers]
    return torch.stack(enc), torch.stack(cross)


class Encoder(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        out = self.model.get_encoder()(input_ids=input_ids, attention_mask=attention_mask,
                                       output_attentions=True, output_hidden_states=True, return_dict=True)
        enc_norms, cross_norms = value_norms(self.model, out.hidden_states, out.last_hidden_state)
        return out.last_hidden_state, torch.stack(out.attentions), enc_norms, cross_norms


class Decoder(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, encoder_attention_mask, encoder_hidden_states):
        out = self.model(encoder_outputs=(encoder_hidden_states,), attention_mask=encoder_attention_mask,
                         decoder_input_ids=input_ids, use_cache=True, output_attentions=True, return_dict=True)
        present = [t for layer in _layers(out.past_key_values) for t in layer]
        return (out.logits, *present, torch.stack(out.decoder_attentions), torch.stack(out.cross_attentions))


class DecoderWithPast(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, encoder_attention_mask, *past):
        layers = [tuple(past[4 * i:4 * i + 4]) for i in range(len(past) // 4)]
        # The cross-attention keys and values come from the cache; the
        # encoder states are read only for their shape.
        enc_key = past[2]
        states = enc_key.new_zeros(enc_key.shape[0], enc_key.shape[2], self.model.config.d_model)
        out = self.model(encoder_outputs=(states,), attention_mask=encoder_attention_mask,
                         decoder_input_ids=input_ids, past_key_values=tuple(layers), use_cache=True,
                         output_attentions=True, return_dict=True)
        present = [t for layer in _layers(out.past_key_values) for t in layer[:2]]
        return (out.logits, *present, torch.stack(out.decoder_attentions), torch.stack(out.cross_attentions))


def cache_names(prefix, layers, parts=("decoder", "encoder")):
    return [f"{prefix}.{i}.{part}.{kv}" for i in range(layers) for part in parts for kv in ("key", "value")]


def _export_options():
    import inspect
    options = {"opset_version": OPSET, "do_constant_folding": True}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        options["dynamo"] = False
    return options


def export_graphs(model, out_dir, start_id, pad_id, sample_ids):
    """Traced with two target positions after two cached ones, so that no
    sequence axis is specialised to 1."""
    cfg = model.config
    layers = cfg.decoder_layers
    a, b, c, d = sample_ids[:4]
    src = torch.tensor([[a, b, c, cfg.eos_token_id], [d, cfg.eos_token_id, pad_id, pad_id]], dtype=torch.long)
    mask = (src != pad_id).long()
    first = torch.tensor([[start_id, a], [start_id, b]], dtype=torch.long)
    later = torch.tensor([[c, d], [d, a]], dtype=torch.long)
    opts = _export_options()
    B, S, T, P = "batch_size", "encoder_sequence_length", "decoder_sequence_length", "past_decoder_sequence_length"
    present_all = cache_names("present", layers)
    present_self = cache_names("present", layers, ("decoder",))
    past_names = cache_names("past_key_values", layers)
    with torch.no_grad():
        torch.onnx.export(Encoder(model).eval(), (src, mask), os.path.join(out_dir, "encoder_model.onnx"),
                          input_names=["input_ids", "attention_mask"],
                          output_names=["last_hidden_state", "encoder_self_attn",
                                        "encoder_value_norms", "cross_value_norms"],
                          dynamic_axes={"input_ids": {0: B, 1: S}, "attention_mask": {0: B, 1: S},
                                        "last_hidden_state": {0: B, 1: S},
                                        "encoder_self_attn": {1: B, 3: S, 4: S},
                                        "encoder_value_norms": {1: B, 3: S},
                                        "cross_value_norms": {1: B, 3: S}}, **opts)
        memory = Encoder(model)(src, mask)[0]
        outs = Decoder(model)(first, mask, memory)
        axes = {"input_ids": {0: B, 1: T}, "encoder_attention_mask": {0: B, 1: S},
                "encoder_hidden_states": {0: B, 1: S}, "logits": {0: B, 1: T},
                "decoder_self_attn": {1: B, 3: T, 4: T}, "cross_attn": {1: B, 3: T, 4: S}}
        for i in range(layers):
            for kv in ("key", "value"):
                axes[f"present.{i}.decoder.{kv}"] = {0: B, 2: T}
                axes[f"present.{i}.encoder.{kv}"] = {0: B, 2: S}
        torch.onnx.export(Decoder(model).eval(), (first, mask, memory), os.path.join(out_dir, "decoder_model.onnx"),
                          input_names=["input_ids", "encoder_attention_mask", "encoder_hidden_states"],
                          output_names=["logits"] + present_all + ["decoder_self_attn", "cross_attn"],
                          dynamic_axes=axes, **opts)
        past = list(outs[1:1 + 4 * layers])
        axes = {"input_ids": {0: B, 1: T}, "encoder_attention_mask": {0: B, 1: S}, "logits": {0: B, 1: T},
                "decoder_self_attn": {1: B, 3: T, 4: P + " + " + T}, "cross_attn": {1: B, 3: T, 4: S}}
        for i in range(layers):
            for kv in ("key", "value"):
                axes[f"past_key_values.{i}.decoder.{kv}"] = {0: B, 2: P}
                axes[f"past_key_values.{i}.encoder.{kv}"] = {0: B, 2: S}
                axes[f"present.{i}.decoder.{kv}"] = {0: B, 2: P + " + " + T}
        torch.onnx.export(DecoderWithPast(model).eval(), (later, mask, *past),
                          os.path.join(out_dir, "decoder_with_past_model.onnx"),
                          input_names=["input_ids", "encoder_attention_mask"] + past_names,
                          output_names=["logits"] + present_self + ["decoder_self_attn", "cross_attn"],
                          dynamic_axes=axes, **opts)
    # The exporter puts each wrapper back in the mode it found it in, and
    # train() reaches the model: keep everything in eval mode (no dropout).
    model.eval()
    heads = cfg.decoder_attention_heads
    head_dim = cfg.d_model // heads
    static = {
        "encoder_model.onnx": {"last_hidden_state": {2: cfg.d_model},
                               "encoder_self_attn": {0: cfg.encoder_layers, 2: cfg.encoder_attention_heads},
                               "encoder_value_norms": {0: cfg.encoder_layers, 2: cfg.encoder_attention_heads},
                               "cross_value_norms": {0: layers, 2: heads}},
        "decoder_model.onnx": {**{n: {1: heads, 3: head_dim} for n in present_all},
                               "logits": {2: cfg.vocab_size},
                               "decoder_self_attn": {0: layers, 2: heads}, "cross_attn": {0: layers, 2: heads}},
        "decoder_with_past_model.onnx": {**{n: {1: heads, 3: head_dim} for n in present_self},
                                         "logits": {2: cfg.vocab_size},
                                         "decoder_self_attn": {0: layers, 2: heads},
                                         "cross_attn": {0: layers, 2: heads}},
    }
    for name, dims in static.items():
        path = os.path.join(out_dir, name)
        graph = onnx.load(path)
        for out in graph.graph.output:
            for axis, size in dims.get(out.name, {}).items():
                out.type.tensor_type.shape.dim[axis].dim_value = size
        onnx.checker.check_model(graph)
        onnx.save(graph, path)


def pad_batch(rows, pad_id):
    width = max(len(r) for r in rows)
    return torch.tensor([r + [pad_id] * (width - len(r)) for r in rows], dtype=torch.long)


def run_cached(model, src_ids, attention_mask, dec_ids):
    """PyTorch with its own cache, one position per step (docs/contract2.md, parity.json)."""
    with torch.no_grad():
        enc = model.get_encoder()(input_ids=src_ids, attention_mask=attention_mask, output_attentions=True,
                                  output_hidden_states=True)
        enc_norms, cross_norms = value_norms(model, enc.hidden_states, enc.last_hidden_state)
        cfg = model.config
        L, H = cfg.decoder_layers, cfg.decoder_attention_heads
        n, T, S = dec_ids.shape[0], dec_ids.shape[1], src_ids.shape[1]
        dself = torch.zeros(L, n, H, T, T)
        cross = torch.zeros(L, n, H, T, S)
        logits, past = [], None
        for t in range(T):
            out = model(encoder_outputs=(enc.last_hidden_state,), attention_mask=attention_mask,
                        decoder_input_ids=dec_ids[:, t:t + 1], past_key_values=past, use_cache=True,
                        output_attentions=True, return_dict=True)
            past = out.past_key_values
            logits.append(out.logits)
            dself[:, :, :, t:t + 1, :t + 1] = torch.stack(out.decoder_attentions)
            cross[:, :, :, t:t + 1, :] = torch.stack(out.cross_attentions)
    return {"last_hidden_state": enc.last_hidden_state, "encoder_self_attn": torch.stack(enc.attentions),
            "encoder_value_norms": enc_norms, "cross_value_norms": cross_norms,
            "logits": torch.cat(logits, dim=1), "decoder_self_attn": dself, "cross_attn": cross}


def _tensor_json(t):
    t = t.detach().cpu()
    data = [round(x, 6) for x in t.reshape(-1).tolist()] if t.is_floating_point() else t.reshape(-1).tolist()
    return {"shape": list(t.shape), "data": data}


def write_parity(path, model, tok, start_id, pad_id, src_prefix, src_suffix, tgt_prefix):
    enc = lambda s: tok(s, add_special_tokens=False).input_ids  # noqa: E731
    srcs = [src_prefix + enc(ko) + src_suffix for ko, _ in PARITY_PAIRS]
    tgts = [[start_id] + tgt_prefix + tok(text_target=en).input_ids[len(tgt_prefix):-1] for _, en in PARITY_PAIRS]
    src_ids = pad_batch(srcs, pad_id)
    mask = (src_ids != pad_id).long()
    dec_ids = pad_batch(tgts, pad_id)
    outputs = run_cached(model, src_ids, mask, dec_ids)
    doc = {"contract": 2, "atol": PARITY_ATOL, "sources": [ko for ko, _ in PARITY_PAIRS],
           "targets": [en for _, en in PARITY_PAIRS],
           "inputs": {"input_ids": _tensor_json(src_ids), "attention_mask": _tensor_json(mask),
                      "decoder_input_ids": _tensor_json(dec_ids)},
           "outputs": {k: _tensor_json(v) for k, v in outputs.items()}}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")


def suppressed_ids(gen):
    """Tokens generation never picks: single-token bad_words_ids and suppress_tokens."""
    ids = set(gen.suppress_tokens or [])
    for words in gen.bad_words_ids or []:
        if len(words) == 1:
            ids.add(words[0])
        else:
            raise UnsupportedModel(f"generation_config bad_words_ids {words}: only single tokens are supported")
    return sorted(ids)


def check_generation(gen):
    for name, default in (("no_repeat_ngram_size", 0), ("encoder_no_repeat_ngram_size", 0),
                          ("begin_suppress_tokens", None), ("forced_decoder_ids", None)):
        if getattr(gen, name, default) not in (default, [], 0, None):
            raise UnsupportedModel(f"generation_config {name}={getattr(gen, name)!r} is not supported")


def export(model_dir, out_dir, src_lang="ko", tgt_lang="en", name=None):
    family = detect_family(model_dir)
    tok = load_tokenizer(model_dir, family, src_lang, tgt_lang)
    model = load_model(model_dir)
    cfg, gen = model.config, model.generation_config
    check_generation(gen)
    if cfg.d_model % cfg.decoder_attention_heads:
        raise UnsupportedModel(f"d_model {cfg.d_model} is not a multiple of {cfg.decoder_attention_heads} heads")
    if len(tok) > cfg.vocab_size:
        raise UnsupportedModel(f"the tokenizer has {len(tok)} tokens but the model's vocabulary is {cfg.vocab_size}")
    start_id = gen.decoder_start_token_id if gen.decoder_start_token_id is not None else cfg.decoder_start_token_id
    pad_id = cfg.pad_token_id
    forced = None
    if family != "marian":
        forced = tok.convert_tokens_to_ids(_lang_token(family, lang_code(family, tgt_lang)))
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    work = tempfile.mkdtemp(prefix=".export-hf-", dir=parent)
    os.chmod(work, 0o755)
    try:
        spec = write_tokenizer(tok, family, model_dir, work)
        sample = [i for i in tok("나는 학교에 간다", add_special_tokens=False).input_ids if i not in (pad_id,)]
        sample = (sample + [5, 6, 7, 8])[:4]
        export_graphs(model, work, start_id, pad_id, sample)
        meta = {
            "contract": 2,
            "name": name or os.path.basename(os.path.abspath(model_dir)),
            "epoch": 0,
            "step": 0,
            "bos_id": cfg.bos_token_id if cfg.bos_token_id is not None else start_id,
            "eos_id": cfg.eos_token_id,
            "pad_id": pad_id,
            "unk_id": tok.unk_token_id,
            "src_lang": src_lang,
            "tgt_lang": tgt_lang,
            "train_loss": None,
            "valid_loss": None,
            "max_positions": cfg.max_position_embeddings,
            "decoder_start_token_id": start_id,
            "forced_bos_token_id": forced,
            "suppress_token_ids": suppressed_ids(gen),
            "tokenizer": spec,
            "family": family,
            "hf_model_type": cfg.model_type,
            "d_model": cfg.d_model,
            "enc_layers": cfg.encoder_layers,
            "dec_layers": cfg.decoder_layers,
            "heads": cfg.decoder_attention_heads,
            "vocab_size": cfg.vocab_size,
            "opset": OPSET,
            "exporter": f"export_hf.py, transformers {transformers.__version__}, torch {torch.__version__}",
        }
        hf_tokenizer.write_json(os.path.join(work, "checkpoint.json"), meta)
        write_parity(os.path.join(work, "parity.json"), model, tok, start_id, pad_id,
                     spec["source_prefix"], spec["source_suffix"], spec["target_prefix"])
        if os.path.exists(out_dir):
            shutil.rmtree(out_dir)
        os.replace(work, out_dir)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return meta


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model_dir", help="a save_pretrained folder (model and tokenizer)")
    ap.add_argument("out_dir", help="the contract-2 folder to write (replaced if it exists)")
    ap.add_argument("--src-lang", default="ko", help="source language (ko, or the family's code: kor_Hang, ko_KR)")
    ap.add_argument("--tgt-lang", default="en", help="target language, forced as the first token where the family does")
    ap.add_argument("--name", help="checkpoint name (default: MODEL_DIR's folder name)")
    args = ap.parse_args(argv)
    try:
        meta = export(args.model_dir, args.out_dir, args.src_lang, args.tgt_lang, args.name)
    except UnsupportedModel as e:
        print(f"export_hf.py: {e}", file=sys.stderr)
        return 2
    print(f"{meta['family']}: {args.out_dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
