#!/usr/bin/env python3
"""Writes docs/validity.md: how well each hallucination detector separates
detached pairs (a source forced with another example's reference) from the
forced pass, per decoder layer where the detector reads one, on the demo set
and on the held-out ko-en news test lines, for the shipped final checkpoint.

    make validity        (= python3 bench/validity.py)

Needs bin/attnaudit (make build) and ../shared/data/ko-en. The news test
lines are those of export/data.py's test split (hash-keyed on the English, so
the reference model never trained on them) that come from the KPC news set.
"""
import glob
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(ROOT, ".work", "validity")
DATA = os.environ.get("KO_EN_DATA", os.path.join(ROOT, "..", "shared", "data", "ko-en"))
BIN = os.path.join(ROOT, "bin", "attnaudit")
CKPT = sorted(glob.glob(os.path.join(ROOT, "examples", "checkpoints", "ko-en-small", "epoch-*")))[-1]
LAYER_DETECTORS = ("wass_to_unif", "wass_to_data", "wass_combo", "ign_src")


def sh(*args):
    out = subprocess.run(args, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        sys.exit(f"{' '.join(args)}: exit {out.returncode}\n{out.stderr}")
    lines = out.stdout.strip().splitlines()
    return lines[-1] if lines else ""


def news_test():
    split = os.path.join(WORK, "split")
    subprocess.run([sys.executable, "data.py", "--data", DATA, "--out", split], check=True,
                   cwd=os.path.join(ROOT, "export"), capture_output=True)
    news_en = set()
    for f in glob.glob(os.path.join(DATA, "kpc-news", "*.en")):
        news_en.update(" ".join(l.split()) for l in open(f, encoding="utf-8"))
    out = os.path.join(WORK, "news-test.tsv")
    n = 0
    with open(out, "w", encoding="utf-8") as w:
        for line in open(os.path.join(split, "test.tsv"), encoding="utf-8"):
            ko, _, en = line.rstrip("\n").partition("\t")
            if " ".join(en.split()) in news_en:
                w.write(line)
                n += 1
    return out, n


def measure(name, data):
    run = sh(BIN, "run", "--checkpoint", CKPT, "--output-dir", os.path.join(WORK, "runs"), "--provider", "cpu",
             *(["--data", data] if data else []))
    layers = json.load(open(os.path.join(run, "manifest.json")))
    rows, aer = {}, None
    for layer in range(6):
        sh(BIN, "metrics", "--run", run, "--layer", str(layer))
        m = json.load(open(os.path.join(run, "manifest.json")))
        s = m["summary"]
        for d in s.get("detectors", []):
            if d["against"] != "detached":
                continue
            key = d["detector"] if d["detector"] not in LAYER_DETECTORS else f'{d["detector"]} (layer {layer})'
            rows[key] = (d["auroc"], d["fpr_at_90_tpr"], d["positives"], d["negatives"])
        if aer is None:
            aer = [l["metrics"].get("aer", {}).get("mean") for l in s["heads"]
                   if l["pass"] == "forced" and l["kind"] == "cross"]
    sh(BIN, "metrics", "--run", run)  # leave the run at the default layer
    return {"name": name, "run": os.path.relpath(run, ROOT), "examples": layers["dataset"]["examples"],
            "rows": rows, "aer": aer}


def verdict(auroc):
    if auroc is None:
        return "—"
    if auroc < 0.6:
        return "near chance"
    if auroc < 0.75:
        return "weak"
    return "useful"


def main():
    os.makedirs(WORK, exist_ok=True)
    news, n = news_test()
    results = [measure("demo set (embedded, 198 examples)", ""), measure(f"ko-en news test lines ({n}, held out)", news)]
    ck = json.load(open(os.path.join(CKPT, "checkpoint.json")))
    out = ["# Detector validity", "",
           f"Measured by `make validity` (bench/validity.py) on `{os.path.relpath(CKPT, ROOT)}` "
           f"({ck.get('name')}, epoch {ck.get('epoch')}), CPU. Positives are detached pairs (each source forced with "
           "the reference of the example half a chunk away, a known hallucination), negatives the forced pass over the "
           "example's own reference. Layer-reading detectors were re-scored with `attnaudit metrics --layer L` "
           "for every decoder layer; seq_logprob reads no layer. AUROC 0.5 is chance.", ""]
    for r in results:
        out += [f"## {r['name']}", "", f"Run folder: `{r['run']}`.", "",
                "| detector | AUROC | FPR at 90% TPR | detached / forced | verdict |",
                "| --- | ---: | ---: | ---: | --- |"]
        for k, (auc, fpr, p, neg) in sorted(r["rows"].items()):
            out.append(f"| {k} | {auc:.3f} | {fpr:.3f} | {p} / {neg} | {verdict(auc)} |")
        if r["aer"] and any(a is not None for a in r["aer"]):
            out += ["", "Forced-pass AER by layer: " + ", ".join(f"L{i} {a:.3f}" for i, a in enumerate(r["aer"]) if a is not None)]
        else:
            out += ["", "AER: this dataset has no gold word alignments, so no layer's AER can be measured on it."]
        out.append("")
    out += ["## In plain words", ""]
    for r in results:
        by = {}
        for k, v in r["rows"].items():
            det, _, layer = k.partition(" (layer ")
            by.setdefault(det, []).append((layer.rstrip(")"), verdict(v[0])))
        parts = []
        for det, ls in sorted(by.items()):
            near = [l for l, v in ls if v == "near chance"]
            if not near:
                continue
            if near == [""]:
                parts.append(det)
            elif len(near) == len(ls):
                parts.append(f"{det} (every layer)")
            else:
                parts.append(f"{det} (layers {', '.join(near)})")
        out.append(f"- {r['name']}: near chance (AUROC below 0.6): " + ("; ".join(parts) if parts else "none") + ".")
    out += ["", "Only seq_logprob separates detached pairs usefully on this model; the attention-based detectors "
            "read raw attention weights, which on this small model say little about whether the source is used "
            "(issue: norm-based attention). The report shows each detector's detached-pair AUROC next to its "
            "flags for the same reason.", ""]
    path = os.path.join(ROOT, "docs", "validity.md")
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write("\n".join(out))
    os.replace(path + ".tmp", path)
    print(path)


if __name__ == "__main__":
    main()
