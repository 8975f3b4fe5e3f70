"""Re-export a checkpoint folder in the other contract, with the same weights.

The shipped checkpoints were exported as contract 1 from training states that
are not shipped; this reads the weights back out of the ONNX files
(onnx_weights.py: every parameter mapped, the folder's parity.json
reproduced) and exports them again, bit for bit the same float32 values:

    python3 convert.py --checkpoint ../examples/checkpoints/ko-en-small/epoch-027 --contract 2 \
        --out ../examples/checkpoints/ko-en-small/epoch-027

--out may be the folder itself: the other contract's graphs are removed.
checkpoint.json keeps every field but contract, exporter (and, for contract 2,
the generation settings, which are added).
"""

import argparse
import json
import os
import shutil
import tempfile

import torch

import export_onnx
from onnx_weights import load_checkpoint

# checkpoint.json fields the exporter writes itself; the rest are carried over.
REWRITTEN = ("contract", "exporter", "opset", "decoder_start_token_id", "forced_bos_token_id")


def convert(folder, out, contract):
    model, meta, _ = load_checkpoint(folder)
    new = export_onnx.checkpoint_meta(model.cfg, meta["name"], meta["epoch"], meta["step"],
                                      meta["train_loss"], meta["valid_loss"], contract=contract)
    new.update({k: v for k, v in meta.items() if k not in new and k not in REWRITTEN})
    with open(os.path.join(folder, "parity.json"), encoding="utf-8") as f:
        parity = json.load(f)
    pairs = tuple(zip(parity["sources"], parity["targets"]))
    with tempfile.TemporaryDirectory() as tmp:
        tok = os.path.join(tmp, "tokenizer.model")
        shutil.copyfile(os.path.join(folder, "tokenizer.model"), tok)
        export_onnx.export_checkpoint(model, tok, out, new, pairs)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True, help="checkpoint folder (contract 1 or 2)")
    ap.add_argument("--contract", type=int, choices=export_onnx.CONTRACTS, default=2)
    ap.add_argument("--out", required=True, help="folder to write (may be --checkpoint itself)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    convert(args.checkpoint, args.out, args.contract)


if __name__ == "__main__":
    main()
