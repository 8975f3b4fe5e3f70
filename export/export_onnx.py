"""Export a PyTorch model and its tokenizer as an attnaudit checkpoint (contract v1).

The folder holds encoder.onnx, decoder.onnx, tokenizer.model, checkpoint.json
and parity.json (a few sentences with PyTorch's outputs, so the Go side can
assert that ONNX Runtime computes the same to PARITY_ATOL).

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

import onnx
import sentencepiece as spm
import torch
from torch import nn

from model import ModelConfig, Transformer
from tokenizer import BOS_ID, EOS_ID, PAD_ID, UNK_ID

CONTRACT = 1
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


def _tensor_json(t):
    t = t.detach().cpu()
    if t.is_floating_point():
        # Six decimals: rounding errors stay 200 times below PARITY_ATOL, and
        # the file is half the size of full float repr.
        data = [round(x, 6) for x in t.reshape(-1).tolist()]
    else:
        data = t.reshape(-1).tolist()
    return {"shape": list(t.shape), "data": data}


def write_parity(path, model, sp, pairs):
    src_ids, tgt_ids = encode_pairs(sp, pairs)
    outputs = run_pytorch(model, src_ids, tgt_ids)
    doc = {
        "contract": CONTRACT,
        "atol": PARITY_ATOL,
        "sources": [ko for ko, _ in pairs],
        "targets": [en for _, en in pairs],
        "inputs": {"src_ids": _tensor_json(src_ids), "tgt_ids": _tensor_json(tgt_ids)},
        "outputs": {name: _tensor_json(t) for name, t in outputs.items()},
    }
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")


def export_graphs(model, out_dir):
    """Write encoder.onnx and decoder.onnx; attention capture is on only while tracing."""
    model.eval()
    src_ids = torch.tensor([[5, 6, 7, EOS_ID], [8, EOS_ID, PAD_ID, PAD_ID]], dtype=torch.long)
    tgt_ids = torch.tensor([[BOS_ID, 9, 10], [BOS_ID, 11, PAD_ID]], dtype=torch.long)
    options = {"opset_version": OPSET, "do_constant_folding": True}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        options["dynamo"] = False  # torch >= 2.9 defaults to the other exporter
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


def _fix_static_dims(path, dims):
    """Record static sizes the exporter's shape inference left symbolic."""
    graph = onnx.load(path)
    for out in graph.graph.output:
        for axis, size in dims.get(out.name, {}).items():
            out.type.tensor_type.shape.dim[axis].dim_value = size
    onnx.checker.check_model(graph)
    onnx.save(graph, path)


def checkpoint_meta(cfg, name, epoch, step, train_loss, valid_loss, extra=None):
    meta = {
        "contract": CONTRACT,
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
    meta.update(extra or {})
    return meta


def export_checkpoint(model, tokenizer_path, out_dir, meta, parity_pairs=PARITY_PAIRS):
    """Write a whole contract-v1 checkpoint folder for model."""
    sp = spm.SentencePieceProcessor(model_file=tokenizer_path)
    if sp.get_piece_size() != model.cfg.vocab_size:
        raise ValueError(f"tokenizer has {sp.get_piece_size()} pieces, model vocab is {model.cfg.vocab_size}")
    ids = (sp.pad_id(), sp.bos_id(), sp.eos_id())
    if ids != (PAD_ID, BOS_ID, EOS_ID):
        raise ValueError(f"tokenizer pad/bos/eos ids are {ids}, want {(PAD_ID, BOS_ID, EOS_ID)}")
    os.makedirs(out_dir, exist_ok=True)
    export_graphs(model, out_dir)
    shutil.copyfile(tokenizer_path, os.path.join(out_dir, "tokenizer.model"))
    with open(os.path.join(out_dir, "checkpoint.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2, ensure_ascii=False)
        f.write("\n")
    write_parity(os.path.join(out_dir, "parity.json"), model, sp, parity_pairs)


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
                               {"random_init": True, "seed": args.seed})
    else:
        model, state = load_state(args.state)
        extra = {k: state[k] for k in ("seed", "train_seconds", "device", "valid_chrf") if k in state}
        if args.metrics:
            extra.update(test_metrics(args.metrics, state["epoch"]))
        meta = checkpoint_meta(model.cfg, args.name, state["epoch"], state["step"],
                               state["train_loss"], state["valid_loss"], extra)
    export_checkpoint(model, args.tokenizer, args.out, meta, PARITY_PAIRS[:args.parity_sentences])


if __name__ == "__main__":
    main()
