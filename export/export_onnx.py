"""Export a PyTorch model and its tokenizer as an attnaudit checkpoint.

Contract 2 (the default; docs/contract2.md): Hugging Face Optimum's seq2seq
layout with a key/value cache: encoder_model.onnx, decoder_model.onnx (first
step, or a whole teacher-forced target), decoder_with_past_model.onnx (later
steps), each with its attention outputs. Contract 1 (--contract 1, SPEC §2):
encoder.onnx and decoder.onnx. Either way the folder also holds
tokenizer.model, checkpoint.json and parity.json (a few sentences with
PyTorch's outputs, so the Go side can assert that ONNX Runtime computes the
same to PARITY_ATOL; for contract 2, PyTorch decoding with its cache).

From a state file written by train.py:

    python3 export_onnx.py --state ../.work/train/epoch-001.pt \
        --tokenizer ../.work/tokenizer.model --out ../examples/checkpoints/ko-en-small/epoch-001

A randomly initialised model (the Go tests' fixture):

    python3 export_onnx.py --random --d-model 32 --ffn 64 --seed 0 --name tiny-random \
        --tokenizer ../.work/tokenizer.model --out ../testdata/checkpoints/tiny

Uses the TorchScript exporter (torch.onnx.export), written for torch 1.13.
"""

import argparse
import inspect
import json
import os
import shutil

import numpy as np
import onnx
from onnx import numpy_helper
import sentencepiece as spm
import torch
from torch import nn
import torch.nn.functional as F

from model import ModelConfig, Transformer
from tokenizer import BOS_ID, EOS_ID, PAD_ID, UNK_ID

CONTRACTS = (1, 2)
OPSET = 17
PARITY_ATOL = 1e-4

ENCODER_INPUTS = ["src_ids"]
ENCODER_OUTPUTS = ["memory", "encoder_self_attn"]
DECODER_INPUTS = ["tgt_ids", "memory", "src_ids"]
DECODER_OUTPUTS = ["logits", "decoder_self_attn", "cross_attn"]

DYNAMIC_AXES = {
    "src_ids": {0: "batch", 1: "src_len"},
    "tgt_ids": {0: "batch", 1: "tgt_len"},
    "memory": {0: "batch", 1: "src_len"},
    "encoder_self_attn": {1: "batch", 3: "src_len", 4: "src_len"},
    "logits": {0: "batch", 1: "tgt_len"},
    "decoder_self_attn": {1: "batch", 3: "tgt_len", 4: "tgt_len"},
    "cross_attn": {1: "batch", 3: "tgt_len", 4: "src_len"},
}

# Contract 2: Optimum's file and tensor names, plus our attention outputs.
C2_ENCODER = "encoder_model.onnx"
C2_DECODER = "decoder_model.onnx"
C2_DECODER_PAST = "decoder_with_past_model.onnx"
C2_ENCODER_INPUTS = ["input_ids", "attention_mask"]
C2_ENCODER_OUTPUTS = ["last_hidden_state", "encoder_self_attn", "encoder_value_norms", "cross_value_norms"]
C2_ATTENTION = ["decoder_self_attn", "cross_attn"]


def cache_names(prefix, layers, parts=("decoder", "encoder")):
    """Optimum's cache tensors in its order: per layer, decoder key, value, encoder key, value."""
    return [f"{prefix}.{i}.{part}.{kv}" for i in range(layers) for part in parts for kv in ("key", "value")]


def c2_dynamic_axes(layers):
    axes = {
        "input_ids": {0: "batch_size", 1: "encoder_sequence_length"},
        "attention_mask": {0: "batch_size", 1: "encoder_sequence_length"},
        "last_hidden_state": {0: "batch_size", 1: "encoder_sequence_length"},
        "encoder_self_attn": {1: "batch_size", 3: "encoder_sequence_length", 4: "encoder_sequence_length"},
        "encoder_value_norms": {1: "batch_size", 3: "encoder_sequence_length"},
        "cross_value_norms": {1: "batch_size", 3: "encoder_sequence_length"},
        "encoder_attention_mask": {0: "batch_size", 1: "encoder_sequence_length"},
        "encoder_hidden_states": {0: "batch_size", 1: "encoder_sequence_length"},
        "logits": {0: "batch_size", 1: "decoder_sequence_length"},
        "cross_attn": {1: "batch_size", 3: "decoder_sequence_length", 4: "encoder_sequence_length"},
    }
    for name in cache_names("past_key_values", layers, ("decoder",)):
        axes[name] = {0: "batch_size", 2: "past_decoder_sequence_length"}
    for name in cache_names("past_key_values", layers, ("encoder",)) + cache_names("present", layers, ("encoder",)):
        axes[name] = {0: "batch_size", 2: "encoder_sequence_length"}
    return axes


# Parity sentences, of different lengths so the batch is padded on both sides.
# Short, because the logits alone are batch x tgt_len x vocab numbers.
PARITY_PAIRS = (
    ("나는 학교에 간다.", "I go to school."),
    ("안녕.", "Hi."),
    ("고마워요.", "Thank you."),
)


class EncoderGraph(nn.Module):
    """src_ids -> (memory, encoder_self_attn)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, src_ids):
        memory = self.model.encode(src_ids)
        return memory, self.model.encoder_attention()


class DecoderGraph(nn.Module):
    """(tgt_ids, memory, src_ids) -> (logits, decoder_self_attn, cross_attn)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, tgt_ids, memory, src_ids):
        hidden = self.model.decode_hidden(tgt_ids, memory, src_ids)
        # The same product as decode()'s F.linear, written so that the tied
        # embedding is not transposed: constant folding would store it twice.
        weight = self.model.embed.weight
        logits = torch.matmul(weight, hidden.transpose(1, 2)).transpose(1, 2)
        return logits, self.model.decoder_self_attention(), self.model.cross_attention()


class C2Encoder(nn.Module):
    """(input_ids, attention_mask) -> (last_hidden_state, encoder_self_attn,
    encoder_value_norms, cross_value_norms): the value-vector norms of the
    encoder's self-attention and of every decoder layer's cross-attention,
    [layers, batch, heads, src_len] (model.py, head_value_norms), for
    norm-based attention. Needs set_store_value_norms(True) while traced."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        memory = self.model.encode(input_ids, key_mask(attention_mask))
        return (memory, self.model.encoder_attention(), self.model.encoder_value_norms(),
                self.model.cross_value_norms(memory))


def key_mask(attention_mask):
    """Optimum's attention_mask (1 = token, 0 = padding) as the model's mask: [batch, 1, 1, len], True = masked."""
    return (attention_mask == 0).unsqueeze(1).unsqueeze(2)


def _logits(model, hidden):
    # F.linear(hidden, embed.weight) over [batch·positions, d_model]: one
    # matrix product for the whole step. Contract 1's broadcast form
    # (embedding × hidden^T per sequence) is a matrix-vector product per row
    # when a step reads one position, and took a third of a cached step.
    # The graphs are exported unfolded, so the tied embedding is stored once.
    b, q, d = hidden.shape
    return F.linear(hidden.reshape(b * q, d), model.embed.weight).reshape(b, q, model.cfg.vocab_size)


class C2Decoder(nn.Module):
    """decoder_model.onnx: (input_ids, encoder_attention_mask, encoder_hidden_states)
    -> (logits, present.* of both halves, decoder_self_attn, cross_attn)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, encoder_attention_mask, encoder_hidden_states):
        cross_kv = self.model.cross_key_values(encoder_hidden_states)
        hidden, present = self.model.decode_cached_hidden(input_ids, cross_kv, key_mask(encoder_attention_mask))
        flat = [t for (dk, dv), (ck, cv) in zip(present, cross_kv) for t in (dk, dv, ck, cv)]
        return (_logits(self.model, hidden), *flat,
                self.model.decoder_self_attention(), self.model.cross_attention())


class C2DecoderWithPast(nn.Module):
    """decoder_with_past_model.onnx: (input_ids, encoder_attention_mask, past_key_values.*)
    -> (logits, present.*.decoder.*, decoder_self_attn, cross_attn)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, encoder_attention_mask, *past):
        past_self = [(past[4 * i], past[4 * i + 1]) for i in range(len(past) // 4)]
        cross_kv = [(past[4 * i + 2], past[4 * i + 3]) for i in range(len(past) // 4)]
        hidden, present = self.model.decode_cached_hidden(
            input_ids, cross_kv, key_mask(encoder_attention_mask), past_self)
        flat = [t for kv in present for t in kv]
        return (_logits(self.model, hidden), *flat,
                self.model.decoder_self_attention(), self.model.cross_attention())


def pad_batch(rows, pad_id=PAD_ID):
    n = max(len(r) for r in rows)
    return torch.tensor([r + [pad_id] * (n - len(r)) for r in rows], dtype=torch.long)


def encode_pairs(sp, pairs):
    """Token conventions: source pieces + EOS; decoder input BOS + target pieces."""
    src = [sp.encode(ko) + [EOS_ID] for ko, _ in pairs]
    tgt = [[BOS_ID] + sp.encode(en) for _, en in pairs]
    return pad_batch(src), pad_batch(tgt)


@torch.no_grad()
def run_pytorch(model, src_ids, tgt_ids):
    """PyTorch's outputs for one batch, by contract name."""
    model.eval()
    model.set_store_attention(True)
    try:
        memory, enc_attn = EncoderGraph(model)(src_ids)
        logits, dec_attn, cross = DecoderGraph(model)(tgt_ids, memory, src_ids)
    finally:
        model.set_store_attention(False)
    return {
        "memory": memory,
        "encoder_self_attn": enc_attn,
        "logits": logits,
        "decoder_self_attn": dec_attn,
        "cross_attn": cross,
    }


@torch.no_grad()
def run_pytorch_cached(model, src_ids, tgt_ids, pad_id=PAD_ID):
    """PyTorch's outputs for one batch decoded position by position with the
    key/value cache (contract 2's way), by contract-2 name. Row t of logits
    and of the attention tensors is the step that reads tgt_ids[:, t]; the
    decoder self-attention of a step fills its row up to t (zeros after)."""
    model.eval()
    model.set_store_attention(True)
    try:
        attention_mask = (src_ids != pad_id).long()
        mask = key_mask(attention_mask)
        model.set_store_value_norms(True)
        memory = model.encode(src_ids, mask)
        enc_attn, enc_norms = model.encoder_attention(), model.encoder_value_norms()
        cross_norms = model.cross_value_norms(memory)
        cross_kv = model.cross_key_values(memory)
        layers, batch, heads = len(model.decoder), src_ids.shape[0], model.cfg.heads
        T, S = tgt_ids.shape[1], src_ids.shape[1]
        dself = torch.zeros(layers, batch, heads, T, T)
        cross = torch.zeros(layers, batch, heads, T, S)
        logits, past = [], None
        for t in range(T):
            step, past = model.decode_cached(tgt_ids[:, t:t + 1], cross_kv, mask, past)
            logits.append(step)
            dself[:, :, :, t:t + 1, :t + 1] = model.decoder_self_attention()
            cross[:, :, :, t:t + 1, :] = model.cross_attention()
    finally:
        model.set_store_attention(False)
        model.set_store_value_norms(False)
    return {
        "last_hidden_state": memory,
        "encoder_self_attn": enc_attn,
        "encoder_value_norms": enc_norms,
        "cross_value_norms": cross_norms,
        "logits": torch.cat(logits, dim=1),
        "decoder_self_attn": dself,
        "cross_attn": cross,
    }


def _tensor_json(t):
    t = t.detach().cpu()
    if t.is_floating_point():
        # Six decimals: rounding errors stay 200 times below PARITY_ATOL, and
        # the file is half the size of full float repr.
        data = [round(x, 6) for x in t.reshape(-1).tolist()]
    else:
        data = t.reshape(-1).tolist()
    return {"shape": list(t.shape), "data": data}


def write_parity(path, model, sp, pairs, contract):
    src_ids, tgt_ids = encode_pairs(sp, pairs)
    if contract == 1:
        outputs = run_pytorch(model, src_ids, tgt_ids)
        inputs = {"src_ids": src_ids, "tgt_ids": tgt_ids}
    else:
        outputs = run_pytorch_cached(model, src_ids, tgt_ids)
        inputs = {"input_ids": src_ids, "attention_mask": (src_ids != PAD_ID).long(), "decoder_input_ids": tgt_ids}
    doc = {
        "contract": contract,
        "atol": PARITY_ATOL,
        "sources": [ko for ko, _ in pairs],
        "targets": [en for _, en in pairs],
        "inputs": {name: _tensor_json(t) for name, t in inputs.items()},
        "outputs": {name: _tensor_json(t) for name, t in outputs.items()},
    }
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")


def _export_options(fold=True):
    options = {"opset_version": OPSET, "do_constant_folding": fold}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        options["dynamo"] = False  # torch >= 2.9 defaults to the other exporter
    return options


def export_graphs_c2(model, out_dir):
    """Write contract 2's three graphs; attention capture is on only while tracing.

    Traced with two new target positions after two cached ones, so that no
    sequence axis is specialised to 1 (the Go side steps one position at a time)."""
    model.eval()
    layers, cfg = len(model.decoder), model.cfg
    src_ids = torch.tensor([[5, 6, 7, EOS_ID], [8, EOS_ID, PAD_ID, PAD_ID]], dtype=torch.long)
    attention_mask = (src_ids != PAD_ID).long()
    first = torch.tensor([[BOS_ID, 9], [BOS_ID, 11]], dtype=torch.long)
    later = torch.tensor([[10, 12], [13, 14]], dtype=torch.long)
    axes = c2_dynamic_axes(layers)
    present_all = cache_names("present", layers)
    present_self = cache_names("present", layers, ("decoder",))
    past = cache_names("past_key_values", layers)
    # No constant folding: the cached path calls layers' methods other than
    # forward(), which the exporter records without module scopes, so folded
    # (renamed) weights could not be told apart when read back
    # (onnx_weights.py). Unfolded, every initializer keeps its parameter's
    # name; ONNX Runtime folds the transposes itself when it loads the graph.
    options = _export_options(fold=False)
    model.set_store_attention(True)
    model.set_store_value_norms(True)
    try:
        with torch.no_grad():
            enc_path = os.path.join(out_dir, C2_ENCODER)
            torch.onnx.export(C2Encoder(model), (src_ids, attention_mask), enc_path,
                              input_names=C2_ENCODER_INPUTS, output_names=C2_ENCODER_OUTPUTS,
                              dynamic_axes={k: axes[k] for k in C2_ENCODER_INPUTS + C2_ENCODER_OUTPUTS}, **options)
            memory = model.encode(src_ids, key_mask(attention_mask))
            outs = C2Decoder(model)(first, attention_mask, memory)
            dec_in = ["input_ids", "encoder_attention_mask", "encoder_hidden_states"]
            dec_out = ["logits"] + present_all + C2_ATTENTION
            dec_axes = {k: axes[k] for k in dec_out + ["encoder_attention_mask", "encoder_hidden_states"] if k in axes}
            dec_axes["input_ids"] = {0: "batch_size", 1: "decoder_sequence_length"}
            for name in cache_names("present", layers, ("decoder",)):
                dec_axes[name] = {0: "batch_size", 2: "decoder_sequence_length"}
            dec_axes["decoder_self_attn"] = {1: "batch_size", 3: "decoder_sequence_length", 4: "decoder_sequence_length"}
            torch.onnx.export(C2Decoder(model), (first, attention_mask, memory), os.path.join(out_dir, C2_DECODER),
                              input_names=dec_in, output_names=dec_out, dynamic_axes=dec_axes, **options)
            past_values = list(outs[1:1 + 4 * layers])
            past_in = ["input_ids", "encoder_attention_mask"] + past
            past_out = ["logits"] + present_self + C2_ATTENTION
            past_axes = {k: axes[k] for k in past_in + past_out if k in axes}
            past_axes["input_ids"] = {0: "batch_size", 1: "decoder_sequence_length"}
            for name in present_self:
                past_axes[name] = {0: "batch_size", 2: "past_decoder_sequence_length + decoder_sequence_length"}
            past_axes["decoder_self_attn"] = {1: "batch_size", 3: "decoder_sequence_length",
                                              4: "past_decoder_sequence_length + decoder_sequence_length"}
            torch.onnx.export(C2DecoderWithPast(model), (later, attention_mask, *past_values),
                              os.path.join(out_dir, C2_DECODER_PAST),
                              input_names=past_in, output_names=past_out, dynamic_axes=past_axes, **options)
    finally:
        model.set_store_attention(False)
        model.set_store_value_norms(False)
    head_dim = cfg.d_model // cfg.heads
    kv = {1: cfg.heads, 3: head_dim}
    _fix_static_dims(os.path.join(out_dir, C2_ENCODER), {"last_hidden_state": {2: cfg.d_model}}, True)
    _fix_static_dims(os.path.join(out_dir, C2_DECODER), {name: kv for name in present_all}, True)
    _fix_static_dims(os.path.join(out_dir, C2_DECODER_PAST), {name: kv for name in present_self}, True)


def export_graphs(model, out_dir):
    """Write encoder.onnx and decoder.onnx; attention capture is on only while tracing."""
    model.eval()
    src_ids = torch.tensor([[5, 6, 7, EOS_ID], [8, EOS_ID, PAD_ID, PAD_ID]], dtype=torch.long)
    tgt_ids = torch.tensor([[BOS_ID, 9, 10], [BOS_ID, 11, PAD_ID]], dtype=torch.long)
    options = _export_options()
    model.set_store_attention(True)
    try:
        with torch.no_grad():
            memory = model.encode(src_ids)
            torch.onnx.export(
                EncoderGraph(model), (src_ids,), os.path.join(out_dir, "encoder.onnx"),
                input_names=ENCODER_INPUTS, output_names=ENCODER_OUTPUTS,
                dynamic_axes={k: DYNAMIC_AXES[k] for k in ENCODER_INPUTS + ENCODER_OUTPUTS}, **options)
            torch.onnx.export(
                DecoderGraph(model), (tgt_ids, memory, src_ids), os.path.join(out_dir, "decoder.onnx"),
                input_names=DECODER_INPUTS, output_names=DECODER_OUTPUTS,
                dynamic_axes={k: DYNAMIC_AXES[k] for k in DECODER_INPUTS + DECODER_OUTPUTS}, **options)
    finally:
        model.set_store_attention(False)
    _fix_static_dims(os.path.join(out_dir, "encoder.onnx"), {"memory": {2: model.cfg.d_model}})


def _constant_reshapes(graph):
    """Give Reshape nodes a constant target shape where the exporter computes
    it from the input's own shape: Reshape(x, Concat(Unsqueeze(Gather(Shape(x), k)), …, c))
    becomes Reshape(x, [0, …, c]) (0 copies the input's axis), x possibly
    behind a Transpose. Every head split and merge is such a chain of 5–9
    small nodes; in a one-position decoder step they were a quarter of the
    graph's nodes, each an ONNX Runtime kernel launch. Returns how many."""
    prod = {o: n for n in graph.node for o in n.output}
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}

    def const(name):
        if name in inits:
            return inits[name]
        n = prod.get(name)
        if n is not None and n.op_type == "Constant":
            return numpy_helper.to_array(n.attribute[0].t)
        return None

    def source_axis(name):
        """(tensor, axis) when name is Unsqueeze(Gather(Shape(tensor), axis), [0])."""
        u = prod.get(name)
        if u is None or u.op_type != "Unsqueeze" or len(u.input) != 2:
            return None
        axes = const(u.input[1])
        g = prod.get(u.input[0])
        if axes is None or axes.tolist() != [0] or g is None or g.op_type != "Gather":
            return None
        idx = const(g.input[1])
        sh = prod.get(g.input[0])
        if idx is None or idx.ndim != 0 or sh is None or sh.op_type != "Shape" or len(sh.attribute):
            return None
        return sh.input[0], int(idx)

    shapes = []  # (Reshape node, Constant node holding its shape)
    for n in graph.node:
        if n.op_type != "Reshape" or any(a.name == "allowzero" and a.i for a in n.attribute):
            continue
        cat = prod.get(n.input[1])
        if cat is None or cat.op_type != "Concat":
            continue
        data, perm = n.input[0], None
        t = prod.get(data)
        if t is not None and t.op_type == "Transpose":
            perm = list(onnx.helper.get_attribute_value(t.attribute[0]))
        shape = []
        for j, part in enumerate(cat.input):
            src = source_axis(part)
            if src is not None:
                tensor, k = src
                same = (tensor == data and k == j) or (
                    perm is not None and tensor == t.input[0] and j < len(perm) and perm[j] == k)
                if not same:
                    break
                shape.append(0)
                continue
            u = prod.get(part)
            c = const(u.input[0]) if u is not None and u.op_type == "Unsqueeze" else const(part)
            if c is None or c.size != 1 or int(c.reshape(-1)[0]) == 0:
                break
            shape.append(int(c.reshape(-1)[0]))
        else:
            # A Constant node rather than an initializer: initializers are
            # the model's parameters (onnx_weights.py maps every one).
            name = n.input[1] + "_const"
            value = numpy_helper.from_array(np.array(shape, dtype=np.int64), name)
            shapes.append((n, onnx.helper.make_node("Constant", [], [name], name=name, value=value)))
    for n, c in shapes:
        graph.node.insert(list(graph.node).index(n), c)
        n.input[1] = c.output[0]
    _drop_dead_nodes(graph)
    return len(shapes)


def _drop_dead_nodes(graph):
    """Remove nodes none of whose outputs is used, until none is left."""
    while True:
        used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
        dead = [n for n in graph.node if not any(o in used for o in n.output)]
        if not dead:
            return
        for n in dead:
            graph.node.remove(n)


def _fix_static_dims(path, dims, constant_reshapes=False):
    """Record static sizes the exporter's shape inference left symbolic."""
    graph = onnx.load(path)
    if constant_reshapes:
        _constant_reshapes(graph.graph)
    for out in graph.graph.output:
        for axis, size in dims.get(out.name, {}).items():
            out.type.tensor_type.shape.dim[axis].dim_value = size
    onnx.checker.check_model(graph)
    onnx.save(graph, path)


def checkpoint_meta(cfg, name, epoch, step, train_loss, valid_loss, extra=None, contract=2):
    if contract not in CONTRACTS:
        raise ValueError(f"contract {contract}: this exporter writes {CONTRACTS}")
    meta = {
        "contract": contract,
        "name": name,
        "epoch": epoch,
        "step": step,
        "bos_id": BOS_ID,
        "eos_id": EOS_ID,
        "pad_id": PAD_ID,
        "unk_id": UNK_ID,
        "src_lang": "ko",
        "tgt_lang": "en",
        "train_loss": train_loss,
        "valid_loss": valid_loss,
        "d_model": cfg.d_model,
        "ffn": cfg.ffn,
        "layers": cfg.enc_layers,
        "enc_layers": cfg.enc_layers,
        "dec_layers": cfg.dec_layers,
        "heads": cfg.heads,
        "vocab_size": cfg.vocab_size,
        "max_positions": cfg.max_positions,
        "tokenizer": "tokenizer.model",
        "opset": OPSET,
        "exporter": f"torch {torch.__version__}",
    }
    if contract == 2:
        # Generation settings, with Hugging Face's generation_config names:
        # the decoder's first input, and no forced first token.
        meta["decoder_start_token_id"] = BOS_ID
        meta["forced_bos_token_id"] = None
    meta.update(extra or {})
    return meta


def export_checkpoint(model, tokenizer_path, out_dir, meta, parity_pairs=PARITY_PAIRS):
    """Write a whole checkpoint folder for model, in meta["contract"]'s layout."""
    contract = meta["contract"]
    if contract not in CONTRACTS:
        raise ValueError(f"contract {contract}: this exporter writes {CONTRACTS}")
    sp = spm.SentencePieceProcessor(model_file=tokenizer_path)
    if sp.get_piece_size() != model.cfg.vocab_size:
        raise ValueError(f"tokenizer has {sp.get_piece_size()} pieces, model vocab is {model.cfg.vocab_size}")
    ids = (sp.pad_id(), sp.bos_id(), sp.eos_id())
    if ids != (PAD_ID, BOS_ID, EOS_ID):
        raise ValueError(f"tokenizer pad/bos/eos ids are {ids}, want {(PAD_ID, BOS_ID, EOS_ID)}")
    os.makedirs(out_dir, exist_ok=True)
    # A folder holds one contract's graphs: drop the other's, if re-exported.
    for f in CONTRACT_FILES[3 - contract]:
        if os.path.exists(os.path.join(out_dir, f)):
            os.remove(os.path.join(out_dir, f))
    if contract == 1:
        export_graphs(model, out_dir)
    else:
        export_graphs_c2(model, out_dir)
    shutil.copyfile(tokenizer_path, os.path.join(out_dir, "tokenizer.model"))
    with open(os.path.join(out_dir, "checkpoint.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2, ensure_ascii=False)
        f.write("\n")
    write_parity(os.path.join(out_dir, "parity.json"), model, sp, parity_pairs, contract)


CONTRACT_FILES = {1: ("encoder.onnx", "decoder.onnx"), 2: (C2_ENCODER, C2_DECODER, C2_DECODER_PAST)}


def load_state(path):
    """A train.py state file -> (model in eval mode, the state dict's metadata)."""
    state = torch.load(path, map_location="cpu")
    model = Transformer(ModelConfig.from_dict(state["config"]))
    model.load_state_dict(state["model"])
    return model.eval(), state


def test_metrics(path, epoch):
    """The test-split scores in train.py's metrics.json, if they belong to this epoch."""
    with open(path, encoding="utf-8") as f:
        m = json.load(f)
    if not m.get("epochs") or m["epochs"][-1]["epoch"] != epoch or m.get("test_chrf") is None:
        return {}
    return {"test_chrf": m["test_chrf"], "test_bleu": m["test_bleu"], "test_pairs": m["test_pairs"]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--state", help="a state file written by train.py")
    src.add_argument("--random", action="store_true", help="export a randomly initialised model")
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--name", default="ko-en-small")
    ap.add_argument("--contract", type=int, choices=CONTRACTS, default=2,
                    help="2: Optimum's layout with a key/value cache (default); 1: encoder.onnx + decoder.onnx")
    ap.add_argument("--d-model", type=int, default=32, help="with --random")
    ap.add_argument("--ffn", type=int, default=64, help="with --random")
    ap.add_argument("--seed", type=int, default=0, help="with --random")
    ap.add_argument("--metrics", help="train.py's metrics.json: adds the test chrF/BLEU to the last epoch's checkpoint")
    ap.add_argument("--parity-sentences", type=int, default=len(PARITY_PAIRS),
                    help="how many of the parity sentences to store (2 or 3)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    if args.random:
        torch.manual_seed(args.seed)
        vocab = spm.SentencePieceProcessor(model_file=args.tokenizer).get_piece_size()
        model = Transformer(ModelConfig(vocab_size=vocab, d_model=args.d_model, ffn=args.ffn)).eval()
        meta = checkpoint_meta(model.cfg, args.name, 0, 0, None, None,
                               {"random_init": True, "seed": args.seed}, args.contract)
    else:
        model, state = load_state(args.state)
        extra = {k: state[k] for k in ("seed", "train_seconds", "device", "valid_chrf") if k in state}
        if args.metrics:
            extra.update(test_metrics(args.metrics, state["epoch"]))
        meta = checkpoint_meta(model.cfg, args.name, state["epoch"], state["step"],
                               state["train_loss"], state["valid_loss"], extra, args.contract)
    export_checkpoint(model, args.tokenizer, args.out, meta, PARITY_PAIRS[:args.parity_sentences])


if __name__ == "__main__":
    main()
