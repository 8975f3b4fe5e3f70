"""The seed's way of making `visualize`'s figures, the baseline for `make bench`.

For each sentence of --file: translate it alone with the PyTorch model (as the
seed did, one sentence at a time, attention kept), then draw with matplotlib
the three figures `attnaudit visualize` writes, for one decoder layer:

    cross_attention_layer{N}.png            head-averaged cross-attention
    cross_attention_multihead_layer{N}.png  the heads in a 2 x 4 grid
    self_attention_layer{N}.png             head-averaged decoder self-attention

in --output-dir/example_K/ (K from 1), tick labels = SentencePiece pieces, in
NanumGothic (fonts-nanum) so Hangul renders. Prints one JSON object of timings;
"seconds_total" runs from interpreter start-up work (imports) to the last file.

    python3 bench/seed_visualize.py --checkpoint testdata/checkpoints/tiny \
        --file bench/visualize.txt --output-dir /tmp/seed_plots
"""

import time

T0 = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import font_manager  # noqa: E402
import torch  # noqa: E402

from torch_infer import load_checkpoint, translate  # noqa: E402

FONT = "/usr/share/fonts/truetype/nanum/NanumGothic.ttf"


def use_hangul_font():
    if not os.path.exists(FONT):
        raise SystemExit(f"{FONT} is missing: install fonts-nanum")
    font_manager.fontManager.addfont(FONT)
    # DejaVu Sans after it for the pieces' "▁", which NanumGothic lacks.
    plt.rcParams["font.family"] = [font_manager.FontProperties(fname=FONT).get_name(), "DejaVu Sans"]
    plt.rcParams["axes.unicode_minus"] = False


def heatmap(ax, matrix, xlabels, ylabels, title):
    im = ax.imshow(matrix, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(xlabels)))
    ax.set_xticklabels(xlabels, rotation=90, fontsize=8)
    ax.set_yticks(range(len(ylabels)))
    ax.set_yticklabels(ylabels, fontsize=8)
    ax.set_title(title)
    return im


def plot_example(res, layer, out_dir, dpi):
    """Write the three figures for one translated sentence; returns their paths."""
    src, tgt_out, tgt_in = res["src_pieces"], res["tgt_pieces"], res["tgt_input_pieces"]
    cross = res["cross"][layer]  # [heads, tgt, src]
    written = []

    fig, ax = plt.subplots(figsize=(10, 8))
    im = heatmap(ax, cross.mean(axis=0), src, tgt_out, f"Cross-attention, layer {layer} (heads averaged)")
    ax.set_xlabel("source")
    ax.set_ylabel("target")
    fig.colorbar(im, ax=ax)
    written.append(os.path.join(out_dir, f"cross_attention_layer{layer}.png"))
    fig.savefig(written[-1], dpi=dpi, bbox_inches="tight")
    plt.close(fig)

    heads = cross.shape[0]
    rows = 2
    cols = (heads + rows - 1) // rows
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 5 * rows))
    for h, ax in enumerate(axes.flat):
        if h >= heads:
            ax.axis("off")
            continue
        im = heatmap(ax, cross[h], src, tgt_out, f"head {h}")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.suptitle(f"Cross-attention, layer {layer}, per head")
    fig.tight_layout()
    written.append(os.path.join(out_dir, f"cross_attention_multihead_layer{layer}.png"))
    fig.savefig(written[-1], dpi=dpi, bbox_inches="tight")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(10, 8))
    im = heatmap(ax, res["decoder_self"][layer].mean(axis=0), tgt_in, tgt_out,
                 f"Decoder self-attention, layer {layer} (heads averaged)")
    fig.colorbar(im, ax=ax)
    written.append(os.path.join(out_dir, f"self_attention_layer{layer}.png"))
    fig.savefig(written[-1], dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return written


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--file", required=True, help="one sentence per line")
    ap.add_argument("--num-examples", type=int, default=0, help="plot only the first N lines (0: all)")
    ap.add_argument("--layer", type=int, default=-1, help="decoder layer; negative counts from the end")
    ap.add_argument("--output-dir", default="outputs/attention_plots")
    ap.add_argument("--dpi", type=int, default=100)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    use_hangul_font()

    with open(args.file, encoding="utf-8") as f:
        sources = [line.rstrip("\n") for line in f if line.strip()]
    if args.num_examples > 0:
        sources = sources[:args.num_examples]
    t_load = time.perf_counter()
    model, meta, sp = load_checkpoint(args.checkpoint, "cpu", verify=False)
    layers = meta["dec_layers"]
    layer = args.layer + layers if args.layer < 0 else args.layer
    if not 0 <= layer < layers:
        raise SystemExit(f"--layer {args.layer}: the decoder has {layers} layers")

    t_translate = t_plot = 0.0
    files = []
    for k, source in enumerate(sources, 1):
        t = time.perf_counter()
        res = translate(model, meta, sp, [source], 1, "cpu")[0]
        t_translate += time.perf_counter() - t
        t = time.perf_counter()
        out_dir = args.output_dir if len(sources) == 1 else os.path.join(args.output_dir, f"example_{k}")
        os.makedirs(out_dir, exist_ok=True)
        files += plot_example(res, layer, out_dir, args.dpi)
        t_plot += time.perf_counter() - t
    end = time.perf_counter()
    print(json.dumps({
        "tool": "seed_visualize.py",
        "examples": len(sources),
        "files": len(files),
        "layer": layer,
        "dpi": args.dpi,
        "seconds_total": round(end - T0, 3),
        "seconds_imports": round(t_load - T0, 3),
        "seconds_model_load": round(end - t_load - t_translate - t_plot, 3),
        "seconds_translate": round(t_translate, 3),
        "seconds_plot": round(t_plot, 3),
        "matplotlib": matplotlib.__version__,
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
