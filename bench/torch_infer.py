"""The PyTorch baseline for `make bench`: the seed's way of translating with attention.

Loads a contract-v1 checkpoint folder into export/model.py's Transformer by
reading the ONNX initializers (the exporter keeps parameter names, except the
Linear weights that constant folding transposed into anonymous MatMul
initializers and the LayerNorm parameters that deduplication turned into
Identity nodes: both are mapped back through the graph). Every parameter of the
model must be found, with its shape; anything unmapped is an error. When the
folder has parity.json, the loaded model must reproduce its outputs.

Then greedy decoding in PyTorch eager, the seed's algorithm and ours: one
encoder pass per batch (sorted by source length), the decoder re-run on the
growing prefix (no cache), then one teacher-forced decoder pass over the
output to capture decoder self- and cross-attention; encoder self-attention,
token log-probs and the three attention kinds are copied to the host per
example with padding removed, as attnaudit does.

    python3 bench/torch_infer.py --checkpoint testdata/checkpoints/tiny \
        --data bench/sentences.txt --batch-sizes 1,16,64 --device cpu

prints one JSON object: sentences/s per batch size (and peak GPU memory on cuda).
Runs on torch 1.13 (Debian, CPU) and torch 2.x (CUDA).
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import onnx
from onnx import numpy_helper
import sentencepiece as spm
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "export"))
from model import ModelConfig, Transformer  # noqa: E402

PREFIX = "model."  # the exporter wraps the model as EncoderGraph.model / DecoderGraph.model


class MappingError(Exception):
    pass


def _module_of(node_name):
    """"/encoder.0/self_attn/q/MatMul" (or "/model/encoder.0/...") -> "encoder.0.self_attn.q"."""
    parts = [p for p in node_name.split("/") if p]
    if len(parts) < 2:
        raise MappingError(f"node {node_name!r} has no module scope: cannot tell which Linear it is "
                           "(export with a torch that records scope names)")
    parts = parts[:-1]
    if parts[0] == PREFIX.rstrip("."):
        parts = parts[1:]
    return ".".join(parts)


def onnx_parameters(path):
    """The model parameters held in one ONNX graph: {state_dict key: numpy array}."""
    graph = onnx.load(path).graph
    arrays = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    alias = {}  # Identity outputs of initializers -> the initializer
    for node in graph.node:
        if node.op_type == "Identity" and node.input[0] in arrays:
            alias[node.output[0]] = node.input[0]
    params, used = {}, set()

    def add(key, value, init_name):
        if key in params and not np.array_equal(params[key], value):
            raise MappingError(f"{path}: {key} is given two different values")
        params[key] = value
        used.add(init_name)

    for name, value in arrays.items():
        if name.startswith(PREFIX):
            add(name[len(PREFIX):], value, name)
    for out, name in alias.items():
        if out.startswith(PREFIX):
            add(out[len(PREFIX):], arrays[name], name)
    for node in graph.node:
        if node.op_type not in ("MatMul", "Gemm"):
            continue
        inputs = [alias.get(i, i) for i in node.input]
        anon = [k for k, i in enumerate(inputs) if i in arrays and not i.startswith(PREFIX)]
        if not anon:
            continue
        if anon != [1]:
            raise MappingError(f"{path}: node {node.name} has weight initializers at inputs {anon}, want only B")
        w = arrays[inputs[1]]
        trans_b = any(a.name == "transB" and a.i for a in node.attribute)
        # torch Linear keeps weight [out, in]; MatMul(x, W) holds W = weight.T.
        add(_module_of(node.name) + ".weight", w if trans_b else w.T, inputs[1])
    unused = sorted(set(arrays) - used)
    if unused:
        raise MappingError(f"{path}: initializers mapped to no parameter: {', '.join(unused[:10])}"
                           + (" …" if len(unused) > 10 else ""))
    return params


def model_config(meta):
    want = ("vocab_size", "d_model", "ffn", "heads", "enc_layers", "dec_layers")
    missing = [k for k in want if k not in meta]
    if missing:
        raise MappingError(f"checkpoint.json lacks {', '.join(missing)}")
    d = {k: meta[k] for k in want}
    d["max_positions"] = meta.get("max_positions", 512)
    d["pad_id"] = meta["pad_id"]
    d["dropout"] = 0.0
    return ModelConfig.from_dict(d)


def load_checkpoint(folder, device="cpu", verify=True):
    """-> (model in eval mode on device, checkpoint.json dict, SentencePiece processor)."""
    with open(os.path.join(folder, "checkpoint.json"), encoding="utf-8") as f:
        meta = json.load(f)
    if meta.get("contract") != 1:
        raise MappingError(f"{folder}: checkpoint contract {meta.get('contract')!r}, want 1")
    model = Transformer(model_config(meta))
    enc = onnx_parameters(os.path.join(folder, "encoder.onnx"))
    dec = onnx_parameters(os.path.join(folder, "decoder.onnx"))
    for key in enc.keys() & dec.keys():
        if not np.array_equal(enc[key], dec[key]):
            raise MappingError(f"{key} differs between encoder.onnx and decoder.onnx")
    found = {**enc, **dec}
    state = model.state_dict()
    missing = sorted(state.keys() - found.keys())
    extra = sorted(found.keys() - state.keys())
    if missing or extra:
        raise MappingError(f"{folder}: parameters not in the ONNX files: {missing}; "
                           f"ONNX parameters the model lacks: {extra}")
    bad = [f"{k} {tuple(found[k].shape)} vs {tuple(v.shape)}" for k, v in state.items()
           if tuple(found[k].shape) != tuple(v.shape)]
    if bad:
        raise MappingError(f"{folder}: shape mismatches: {'; '.join(bad)}")
    model.load_state_dict({k: torch.from_numpy(np.array(v, dtype=v.dtype, copy=True)) for k, v in found.items()}, strict=True)
    model.eval()
    if verify and os.path.exists(os.path.join(folder, "parity.json")):
        check_parity(model, os.path.join(folder, "parity.json"))
    sp = spm.SentencePieceProcessor(model_file=os.path.join(folder, "tokenizer.model"))
    return model.to(device), meta, sp


@torch.no_grad()
def check_parity(model, path):
    """The loaded model must reproduce the exporter's PyTorch outputs."""
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)

    def tensor(t, dtype):
        return torch.tensor(t["data"], dtype=dtype).reshape(t["shape"])

    src = tensor(doc["inputs"]["src_ids"], torch.long)
    tgt = tensor(doc["inputs"]["tgt_ids"], torch.long)
    model.set_store_attention(True)
    try:
        memory = model.encode(src)
        got = {"memory": memory, "encoder_self_attn": model.encoder_attention()}
        got["logits"] = model.decode(tgt, memory, src)
        got["decoder_self_attn"] = model.decoder_self_attention()
        got["cross_attn"] = model.cross_attention()
    finally:
        model.set_store_attention(False)
    atol = float(doc.get("atol", 1e-4))
    for name, want in doc["outputs"].items():
        diff = (got[name] - tensor(want, torch.float32)).abs().max().item()
        if diff > atol:
            raise MappingError(f"{path}: {name} differs from the exporter's by {diff:.3g} (atol {atol})")


def _pad(rows, pad_id, device):
    n = max(len(r) for r in rows)
    return torch.tensor([r + [pad_id] * (n - len(r)) for r in rows], dtype=torch.long, device=device)


def _greedy(model, memory, src, limits, bos, eos, pad, keep_finished):
    """Token lists without BOS/EOS; the decoder re-run on the whole prefix each step."""
    n = src.shape[0]
    device = src.device
    out = torch.full((n, max(int(limits.max()) - 1, 1)), pad, dtype=torch.long, device=device)
    alive = torch.arange(n, device=device)
    prefix = torch.full((n, 1), bos, dtype=torch.long, device=device)
    done = limits <= 1
    mem, src_a = memory, src
    for step in range(int(limits.max()) - 1):
        nxt = model.decode(prefix, mem, src_a)[:, -1].argmax(-1)
        if keep_finished:
            nxt = nxt.masked_fill(done, pad)
        out[alive, step] = nxt
        prefix = torch.cat([prefix, nxt.unsqueeze(1)], dim=1)
        fin = (nxt == eos) | (limits[alive] - 1 <= step + 1)
        if keep_finished:
            done |= fin
            if bool(done.all()):
                break
            continue
        keep = ~fin
        if not bool(keep.any()):
            break
        if not bool(keep.all()):
            alive, prefix, mem, src_a = alive[keep], prefix[keep], mem[keep], src_a[keep]
    hyps = []
    for row in out.tolist():
        toks = []
        for t in row:
            if t in (eos, pad):
                break
            toks.append(t)
        hyps.append(toks)
    return hyps


@torch.no_grad()
def translate(model, meta, sp, sources, batch_size, device, keep_finished=False):
    """Greedy decoding with attention capture; one result dict per source, in order.

    The longest output is 2 x source tokens + 10 with EOS (attnaudit's
    max_len 0), capped by the model's positions. Finished rows leave the
    batch, as in attnaudit; keep_finished keeps them to the end, as the
    seed's Transformer.greedy does.
    """
    bos, eos, pad = meta["bos_id"], meta["eos_id"], meta["pad_id"]
    max_pos = meta.get("max_positions") or 10 ** 9
    src_all = [sp.encode(s) + [eos] for s in sources]
    order = sorted(range(len(sources)), key=lambda i: len(src_all[i]))
    results = [None] * len(sources)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        srcs = [src_all[i] for i in idx]
        src = _pad(srcs, pad, device)
        model.set_store_attention(True)
        memory = model.encode(src)
        enc_attn = model.encoder_attention()
        model.set_store_attention(False)

        # At most limit - 1 tokens before EOS, as attnaudit's greedy search.
        limits = torch.tensor([min(2 * len(s) + 10, max_pos) for s in srcs], device=device)
        hyps = _greedy(model, memory, src, limits, bos, eos, pad, keep_finished)

        # Teacher-forced pass over [bos, y1..yn] predicting [y1..yn, eos]: the
        # attention of generation time under causal masking.
        tgt_in = _pad([[bos] + h for h in hyps], pad, device)
        model.set_store_attention(True)
        logits = model.decode(tgt_in, memory, src)
        dec_attn = model.decoder_self_attention()
        cross = model.cross_attention()
        model.set_store_attention(False)
        targets = _pad([h + [eos] for h in hyps], pad, device)
        logprobs = F.log_softmax(logits.float(), dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)

        enc_attn, dec_attn, cross, logprobs = (t.float().cpu().numpy() for t in (enc_attn, dec_attn, cross, logprobs))
        for b, i in enumerate(idx):
            ns, nt = len(srcs[b]), len(hyps[b]) + 1
            results[i] = {
                "src_ids": srcs[b],
                "src_pieces": [sp.id_to_piece(t) for t in srcs[b]],
                "tgt_ids": hyps[b] + [eos],
                "tgt_pieces": [sp.id_to_piece(t) for t in hyps[b] + [eos]],
                "tgt_input_pieces": [sp.id_to_piece(bos)] + [sp.id_to_piece(t) for t in hyps[b]],
                "hypothesis": sp.decode(hyps[b]),
                "token_logprobs": np.ascontiguousarray(logprobs[b, :nt]),
                "encoder_self": np.ascontiguousarray(enc_attn[:, b, :, :ns, :ns]),
                "decoder_self": np.ascontiguousarray(dec_attn[:, b, :, :nt, :nt]),
                "cross": np.ascontiguousarray(cross[:, b, :, :nt, :ns]),
            }
    return results


def read_sources(path):
    """Sources from .jsonl ("source"), .tsv (first column) or plain text (one per line)."""
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line.strip():
                continue
            if path.endswith(".jsonl"):
                out.append(json.loads(line)["source"])
            elif path.endswith(".tsv"):
                out.append(line.split("\t", 1)[0])
            else:
                out.append(line)
    if not out:
        raise SystemExit(f"{path}: no sentences")
    return out


def _sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True, help="checkpoint folder (contract v1)")
    ap.add_argument("--data", required=True, help="sentences: .txt, .tsv or .jsonl")
    ap.add_argument("--batch-sizes", default="1,16,64", help="comma list")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads; 0 leaves torch's default")
    ap.add_argument("--repeat", type=int, default=1, help="translate the sentence set this many times over")
    ap.add_argument("--keep-finished", action="store_true",
                    help="keep finished rows in the batch (the seed's Transformer.greedy); "
                         "default: drop them, as attnaudit does")
    ap.add_argument("--no-verify", action="store_true", help="skip the parity.json check")
    args = ap.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = args.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no GPU")

    t0 = time.perf_counter()
    model, meta, sp = load_checkpoint(args.checkpoint, device, verify=not args.no_verify)
    _sync(device)
    load_s = time.perf_counter() - t0
    sources = read_sources(args.data) * args.repeat

    # One small untimed batch, so the first timed batch size does not pay for
    # allocator and kernel warm-up alone.
    translate(model, meta, sp, sources[:2], 2, device)
    _sync(device)

    runs = []
    for bs in (int(b) for b in args.batch_sizes.split(",") if b.strip()):
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        t = time.perf_counter()
        res = translate(model, meta, sp, sources, bs, device, args.keep_finished)
        _sync(device)
        secs = time.perf_counter() - t
        run = {
            "batch_size": bs,
            "sentences": len(sources),
            "seconds": round(secs, 4),
            "sentences_per_s": round(len(sources) / secs, 3),
            "target_tokens": sum(len(r["tgt_ids"]) for r in res),
        }
        if device.startswith("cuda"):
            run["peak_gpu_mem_bytes"] = torch.cuda.max_memory_allocated()
        runs.append(run)
    out = {
        "tool": "torch_infer.py",
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name() if device.startswith("cuda") else "cpu",
        "threads": torch.get_num_threads(),
        "finished_rows": "kept" if args.keep_finished else "dropped",
        "checkpoint": os.path.abspath(args.checkpoint),
        "checkpoint_name": meta.get("name"),
        "load_seconds": round(load_s, 3),
        "sample": {"source": sources[0], "hypothesis": res[0]["hypothesis"]} if runs else None,
        "runs": runs,
    }
    print(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    main()
