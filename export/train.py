"""Train the reference model, seeded and reproducible, on CPU or CUDA.

Reads train/valid(/test).tsv from data.py and the tokenizer from tokenizer.py.
Batches hold up to --max-tokens padded tokens of pairs sorted by length; their
order is shuffled each epoch by a seeded generator. Loss: cross-entropy with
label smoothing 0.1; Adam with linear warmup then inverse-square-root decay.

Saves ``epoch-NNN.pt`` at each epoch of --save-epochs and at the last one:
{"config", "model" (state dict), "epoch", "step", "train_loss", "valid_loss",
"valid_chrf", "seed", "device", "train_seconds", "args"}. ``train_loss`` is the
epoch's mean label-smoothed loss per target token (dropout on); ``valid_loss``
is the plain cross-entropy per target token on the valid split (eval mode).
With --test, the last model greedy-decodes the test split and the corpus chrF
and BLEU (sacrebleu, when importable) go to metrics.json.

    python3 train.py --data ../.work/data --tokenizer ../.work/tokenizer.model \
        --out ../.work/train --epochs 60 --save-epochs 1,10 --test

The same seed and device give the same run; CPU and CUDA runs differ
numerically (different kernels and summation orders).
"""

import argparse
import json
import math
import os
import random
import sys
import time

import sentencepiece as spm
import torch
import torch.nn.functional as F

from data import read_tsv
from model import ModelConfig, Transformer
from tokenizer import BOS_ID, EOS_ID, PAD_ID

try:
    import sacrebleu
except ImportError:  # Debian has no python3-sacrebleu; the metrics are then skipped.
    sacrebleu = None


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def set_deterministic(seed):
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    random.seed(seed)
    torch.manual_seed(seed)
    # warn_only: a CUDA op without a deterministic kernel must not stop the run.
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False


def encode_split(sp, pairs, max_len):
    """[(src_ids, tgt_ids)] with source EOS and target EOS; longer pairs dropped."""
    out = []
    for ko, en in pairs:
        src = sp.encode(ko) + [EOS_ID]
        tgt = sp.encode(en) + [EOS_ID]
        if len(src) <= max_len and len(tgt) + 1 <= max_len:
            out.append((src, tgt))
    return out


def make_batches(examples, max_tokens):
    """Lists of example indices, sorted by length, each ≤ max_tokens padded tokens."""
    order = sorted(range(len(examples)), key=lambda i: (len(examples[i][0]), len(examples[i][1]), i))
    batches, cur, longest = [], [], 0
    for i in order:
        n = max(len(examples[i][0]), len(examples[i][1]) + 1)
        if cur and max(longest, n) * (len(cur) + 1) > max_tokens:
            batches.append(cur)
            cur, longest = [], 0
        cur.append(i)
        longest = max(longest, n)
    if cur:
        batches.append(cur)
    return batches


def collate(examples, idx, device):
    """-> src_ids, decoder input (BOS + target), gold (target + EOS), all right-padded."""
    src = [examples[i][0] for i in idx]
    tgt = [examples[i][1] for i in idx]
    s = max(map(len, src))
    t = max(map(len, tgt))
    src_ids = torch.tensor([x + [PAD_ID] * (s - len(x)) for x in src], dtype=torch.long)
    dec_in = torch.tensor([[BOS_ID] + x[:-1] + [PAD_ID] * (t - len(x)) for x in tgt], dtype=torch.long)
    gold = torch.tensor([x + [PAD_ID] * (t - len(x)) for x in tgt], dtype=torch.long)
    return src_ids.to(device), dec_in.to(device), gold.to(device)


def inverse_sqrt(step, warmup):
    step = max(step, 1)
    return min(step / warmup, math.sqrt(warmup / step))


@torch.no_grad()
def evaluate_loss(model, examples, batches, device):
    model.eval()
    total, tokens = 0.0, 0
    for idx in batches:
        src, dec_in, gold = collate(examples, idx, device)
        logits = model(src, dec_in)
        total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), gold.reshape(-1),
                                 ignore_index=PAD_ID, reduction="sum").item()
        tokens += int((gold != PAD_ID).sum())
    return total / tokens


@torch.no_grad()
def translate(model, sp, sources, device, batch_size=100):
    """Greedy translations of sources, in order."""
    model.eval()
    encoded = [sp.encode(s) + [EOS_ID] for s in sources]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    out = [None] * len(encoded)
    for b in range(0, len(order), batch_size):
        idx = order[b:b + batch_size]
        n = max(len(encoded[i]) for i in idx)
        src = torch.tensor([encoded[i] + [PAD_ID] * (n - len(encoded[i])) for i in idx],
                           dtype=torch.long, device=device)
        max_len = min(int(n * 1.5) + 10, model.cfg.max_positions - 1)
        for i, ids in zip(idx, model.greedy(src, BOS_ID, EOS_ID, max_len)):
            out[i] = sp.decode(ids)
    return out


def chrf_bleu(model, sp, pairs, device):
    """(chrF, BLEU, hypotheses) of greedy decoding over pairs, or Nones without sacrebleu."""
    if sacrebleu is None:
        return None, None, None
    hyps = translate(model, sp, [ko for ko, _ in pairs], device)
    refs = [[en for _, en in pairs]]
    return sacrebleu.corpus_chrf(hyps, refs).score, sacrebleu.corpus_bleu(hyps, refs).score, hyps


def save_state(path, model, cfg, meta):
    state = {"config": cfg.to_dict(),
             "model": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
    state.update(meta)
    torch.save(state, path)


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="folder with train.tsv, valid.tsv (test.tsv with --test)")
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--save-epochs", default="1,10", help="comma-separated; the last epoch is always saved")
    ap.add_argument("--d-model", type=int, default=80)
    ap.add_argument("--ffn", type=int, default=256)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--layers", type=int, default=6, help="encoder and decoder layers each")
    ap.add_argument("--dropout", type=float, default=0.2)
    ap.add_argument("--max-tokens", type=int, default=4096, help="padded tokens per batch")
    ap.add_argument("--max-len", type=int, default=256, help="longest pair kept for training, in tokens")
    ap.add_argument("--lr", type=float, default=2e-3, help="peak learning rate")
    ap.add_argument("--warmup", type=int, default=800, help="warmup steps")
    ap.add_argument("--label-smoothing", type=float, default=0.1)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    ap.add_argument("--max-seconds", type=float, default=0,
                    help="stop after the epoch that passes this much training time (0: no limit)")
    ap.add_argument("--test", action="store_true", help="greedy chrF/BLEU of the last model on test.tsv")
    return ap.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    set_deterministic(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else ("cpu" if args.device == "auto" else args.device))
    os.makedirs(args.out, exist_ok=True)
    save_epochs = {int(e) for e in args.save_epochs.split(",") if e}

    sp = spm.SentencePieceProcessor(model_file=args.tokenizer)
    cfg = ModelConfig(vocab_size=sp.get_piece_size(), d_model=args.d_model, ffn=args.ffn, heads=args.heads,
                      enc_layers=args.layers, dec_layers=args.layers, dropout=args.dropout, pad_id=PAD_ID)
    train = encode_split(sp, read_tsv(os.path.join(args.data, "train.tsv")), args.max_len)
    valid_pairs = read_tsv(os.path.join(args.data, "valid.tsv"))
    valid = encode_split(sp, valid_pairs, cfg.max_positions - 1)
    train_batches = make_batches(train, args.max_tokens)
    valid_batches = make_batches(valid, args.max_tokens)
    log(f"torch {torch.__version__} on {device}; {len(train)} train pairs in {len(train_batches)} batches, "
        f"{len(valid)} valid pairs")

    model = Transformer(cfg).to(device)
    log(f"config {cfg.to_dict()}; {sum(p.numel() for p in model.parameters())} parameters")
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.98), eps=1e-9)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: inverse_sqrt(s + 1, args.warmup))
    shuffler = random.Random(args.seed)

    step, elapsed, history = 0, 0.0, []
    for epoch in range(1, args.epochs + 1):
        start = time.perf_counter()
        model.train()
        order = list(range(len(train_batches)))
        shuffler.shuffle(order)
        total, tokens = 0.0, 0
        for b in order:
            src, dec_in, gold = collate(train, train_batches[b], device)
            logits = model(src, dec_in)
            n = int((gold != PAD_ID).sum())
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), gold.reshape(-1), ignore_index=PAD_ID,
                                   label_smoothing=args.label_smoothing, reduction="sum")
            opt.zero_grad(set_to_none=True)
            (loss / n).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
            opt.step()
            sched.step()
            step += 1
            total += loss.item()
            tokens += n
        train_loss = total / tokens
        valid_loss = evaluate_loss(model, valid, valid_batches, device)
        elapsed += time.perf_counter() - start
        history.append({"epoch": epoch, "step": step, "train_loss": train_loss, "valid_loss": valid_loss,
                        "seconds": round(elapsed, 1)})
        log(f"epoch {epoch:3d} step {step:6d} train_loss {train_loss:.4f} valid_loss {valid_loss:.4f} "
            f"lr {sched.get_last_lr()[0]:.2e} {elapsed:.0f}s")
        last = epoch == args.epochs or (args.max_seconds and elapsed >= args.max_seconds)
        if epoch in save_epochs or last:
            valid_chrf, _, _ = chrf_bleu(model, sp, valid_pairs, device)
            if valid_chrf is not None:
                log(f"epoch {epoch:3d} valid chrF {valid_chrf:.2f}")
            save_state(os.path.join(args.out, f"epoch-{epoch:03d}.pt"), model, cfg, {
                "epoch": epoch, "step": step, "train_loss": train_loss, "valid_loss": valid_loss,
                "valid_chrf": valid_chrf, "seed": args.seed, "device": device.type,
                "train_seconds": round(elapsed, 1), "args": vars(args)})
        if last:
            break

    metrics = {"epochs": history, "train_seconds": round(elapsed, 1), "device": device.type,
               "torch": torch.__version__}
    if args.test:
        test_pairs = read_tsv(os.path.join(args.data, "test.tsv"))
        chrf, bleu, hyps = chrf_bleu(model, sp, test_pairs, device)
        metrics.update({"test_pairs": len(test_pairs), "test_chrf": chrf, "test_bleu": bleu})
        if hyps is not None:
            log(f"test ({len(test_pairs)} pairs, greedy): chrF {chrf:.2f} BLEU {bleu:.2f}")
            with open(os.path.join(args.out, "test.hyp"), "w", encoding="utf-8") as f:
                f.write("\n".join(hyps) + "\n")
    with open(os.path.join(args.out, "metrics.json"), "w", encoding="utf-8") as f:
        json.dump(metrics, f, indent=2)


if __name__ == "__main__":
    main()
