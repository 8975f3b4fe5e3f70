"""The PyTorch baseline for `make bench`: the seed's way of translating with attention.

Loads a checkpoint folder (contract 1 or 2) into export/model.py's Transformer
by reading the ONNX initializers (export/onnx_weights.py: every parameter
mapped, the folder's parity.json reproduced).

Then greedy decoding in PyTorch eager, the seed's algorithm and ours: one
encoder pass per batch (sorted by source length), the decoder re-run on the
growing prefix (no cache), then one teacher-forced decoder pass over the
output to capture decoder self- and cross-attention; encoder self-attention,
token log-probs and the three attention kinds are copied to the host per
example with padding removed, as attnaudit does. With --cached, contract 2's
algorithm: the decoder reads one new position per step against a key/value
cache (finished rows leave the batch and the cache), and each step's
attention rows and log-prob make up the free pass: no re-run.

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
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "export"))
from export_onnx import key_mask  # noqa: E402
from onnx_weights import load_checkpoint  # noqa: E402

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


def _greedy_cached(model, memory, src, limits, bos, eos, pad):
    """Greedy decoding with the key/value cache (contract 2's algorithm): one
    decoder position per step, finished rows leaving the batch and the cache;
    each step's attention rows and log-prob are the free pass's, so there is
    no teacher-forced re-run. Attention capture must be on.

    Returns (token lists without BOS/EOS, log-probs per row, decoder
    self-attention [layers, heads, n+1, n+1] and cross-attention
    [layers, heads, n+1, src_len] per row, as numpy)."""
    n, S = src.shape
    device = src.device
    mask = model.source_mask(src)
    cross_kv = model.cross_key_values(memory)
    alive = torch.arange(n, device=device)
    inp = torch.full((n, 1), bos, dtype=torch.long, device=device)
    hyps = [[] for _ in range(n)]
    logps = [[] for _ in range(n)]
    steps = []  # (rows, decoder self [L, a, H, t], cross [L, a, H, S]) per step
    past = None
    for step in range(int(limits.max())):
        logits, past = model.decode_cached(inp, cross_kv, mask, past)
        logits = logits[:, -1].float()
        nxt = logits.argmax(-1)
        # At its limit a row holds limit - 1 tokens: EOS is forced, as in attnaudit.
        nxt = torch.where(limits[alive] - 1 <= step, torch.full_like(nxt, eos), nxt)
        lp = F.log_softmax(logits, dim=-1).gather(-1, nxt.unsqueeze(-1)).squeeze(-1)
        rows = alive.tolist()
        steps.append((rows, model.decoder_self_attention()[:, :, :, 0].cpu().numpy(),
                      model.cross_attention()[:, :, :, 0].cpu().numpy()))
        for r, tok, p in zip(rows, nxt.tolist(), lp.tolist()):
            logps[r].append(p)
            if tok != eos:
                hyps[r].append(tok)
        keep = nxt != eos
        if not bool(keep.any()):
            break
        if not bool(keep.all()):
            alive, mask = alive[keep], mask[keep]
            past = [(k[keep], v[keep]) for k, v in past]
            cross_kv = [(k[keep], v[keep]) for k, v in cross_kv]
        inp = nxt[keep].unsqueeze(1)
    layers, heads = len(model.decoder), model.cfg.heads
    dself = [np.zeros((layers, heads, len(h) + 1, len(h) + 1), np.float32) for h in hyps]
    cross = [np.zeros((layers, heads, len(h) + 1, S), np.float32) for h in hyps]
    for t, (rows, ds, cr) in enumerate(steps):
        for a, r in enumerate(rows):
            dself[r][:, :, t, :t + 1] = ds[:, a]
            cross[r][:, :, t] = cr[:, a]
    return hyps, logps, dself, cross


def _batches(sp, sources, batch_size, eos, pad, device):
    """Yields (positions, source ids, padded tensor) per batch, sources sorted
    by length as attnaudit batches them."""
    src_all = [sp.encode(s) + [eos] for s in sources]
    order = sorted(range(len(sources)), key=lambda i: len(src_all[i]))
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        srcs = [src_all[i] for i in idx]
        yield idx, srcs, _pad(srcs, pad, device)


@torch.no_grad()
def translate_cached(model, meta, sp, sources, batch_size, device):
    """translate() with the key/value cache: attention captured while decoding."""
    bos, eos, pad = meta["bos_id"], meta["eos_id"], meta["pad_id"]
    max_pos = meta.get("max_positions") or 10 ** 9
    results = [None] * len(sources)
    for idx, srcs, src in _batches(sp, sources, batch_size, eos, pad, device):
        limits = torch.tensor([min(2 * len(s) + 10, max_pos) for s in srcs], device=device)
        model.set_store_attention(True)
        try:
            memory = model.encode(src)
            enc_attn = model.encoder_attention().float().cpu().numpy()
            hyps, logps, dself, cross = _greedy_cached(model, memory, src, limits, bos, eos, pad)
        finally:
            model.set_store_attention(False)
        for b, i in enumerate(idx):
            ns = len(srcs[b])
            results[i] = {
                "src_ids": srcs[b],
                "src_pieces": [sp.id_to_piece(t) for t in srcs[b]],
                "tgt_ids": hyps[b] + [eos],
                "tgt_pieces": [sp.id_to_piece(t) for t in hyps[b] + [eos]],
                "hypothesis": sp.decode(hyps[b]),
                "token_logprobs": np.asarray(logps[b], np.float32),
                "encoder_self": np.ascontiguousarray(enc_attn[:, b, :, :ns, :ns]),
                "decoder_self": dself[b],
                "cross": np.ascontiguousarray(cross[b][..., :ns]),
            }
    return results


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
    results = [None] * len(sources)
    for idx, srcs, src in _batches(sp, sources, batch_size, eos, pad, device):
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
    ap.add_argument("--cached", action="store_true",
                    help="decode with the key/value cache, attention captured per step (contract 2's "
                         "algorithm); default: re-run the prefix and one teacher-forced pass (contract 1's)")
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
    if args.cached and args.keep_finished:
        raise SystemExit("--cached drops finished rows; --keep-finished is for the uncached way")
    run = translate_cached if args.cached else translate
    extra = {} if args.cached else {"keep_finished": args.keep_finished}
    run(model, meta, sp, sources[:2], 2, device)
    _sync(device)

    runs = []
    for bs in (int(b) for b in args.batch_sizes.split(",") if b.strip()):
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        t = time.perf_counter()
        res = run(model, meta, sp, sources, bs, device, **extra)
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
        "mode": "cached" if args.cached else "uncached",
        "checkpoint": os.path.abspath(args.checkpoint),
        "checkpoint_name": meta.get("name"),
        "load_seconds": round(load_s, 3),
        "sample": {"source": sources[0], "hypothesis": res[0]["hypothesis"]} if runs else None,
        "runs": runs,
    }
    print(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    main()
