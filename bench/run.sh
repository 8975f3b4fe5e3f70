#!/usr/bin/env bash
# make bench: attnaudit against the seed's PyTorch way, side by side, on CPU.
# Appends one section to bench/RESULTS.md (earlier sections are kept).
#
#   infer      attnaudit infer on the contract-2 checkpoint vs bench/torch_infer.py --cached (target ≥ 2x),
#              vs attnaudit on a contract-1 copy of the same weights (target ≥ 3x at batch 64), and vs
#              torch uncached, at batch 1/16/64
#   infer-c1   the older table: attnaudit vs torch uncached only (on BENCH_CHECKPOINT as it is)
#   run        attnaudit run on 1,000 sentences: seconds per stage from manifest.json
#   visualize  attnaudit visualize --file vs bench/seed_visualize.py on 20 sentences (target ≥ 10x)
#   rss        peak RSS of attnaudit run on 1,000 and 10,000 sentences (should stay flat)
#   report     report.html's size and open time in headless Chromium (bench/pageopen) on
#              runs of 198 and 1,000 examples, with the default selection and every example shown
#   scale      sentences/s against cores (1, 2, 4, 8, 16, up to nproc; each command pinned to its
#              cores with taskset): attnaudit infer (--threads k) vs bench/torch_infer.py --cached
#              (--threads k) at batch 16 and 64 on BENCH_SCALE_N sentences (792), then the
#              metrics and report stages of one run with GOMAXPROCS=k
#
#   BENCH=infer,visualize bench/run.sh   a subset (default: all)
#   QUICK=1 bench/run.sh                 smoke test: fewer sentences, smaller runs
# Environment knobs of bench/lib.sh: BENCH_PYTHON, BENCH_THREADS, BENCH_CHECKPOINT,
# BENCH_WORK, BENCH_KEEP, BENCH_RESULTS; BENCH_INFER_N (sentences for infer, 128),
# BENCH_RSS_NS (run sizes for rss, "1000 10000"), BENCH_FORCE_RSS=1 (no memory guard),
# BENCH_SCALE_N (sentences for scale, 792), BENCH_SCALE_CORES (default "1 2 4 8 16" up to nproc),
# BENCH_SCALE_STAGES=0 (scale: infer only, not the metrics and report stages),
# BENCH_SCALE_REPEAT (scale: runs of each command, the fastest kept; 1),
# BENCH_SCALE_WHOLE=0 (scale: not the default split against batches kept whole at the most cores).
set -uo pipefail
. "$(dirname "$0")/lib.sh"

if [ "${QUICK:-0}" = 1 ]; then
	MODE="QUICK smoke test" INFER_BS="1 16" INFER_N=16 RUN_N=100 RSS_NS="100 400" VIS_N=5 REPORT_NS="100" SCALE_N=64
else
	MODE="full" INFER_BS="1 16 64" INFER_N=${BENCH_INFER_N:-128} RUN_N=1000 RSS_NS=${BENCH_RSS_NS:-"1000 10000"} VIS_N=20
	REPORT_NS=${BENCH_REPORT_NS:-"198 1000"} SCALE_N=${BENCH_SCALE_N:-792}
fi

# run_data N OUT: a dataset of N examples, the demo set repeated (ids made
# unique, so references, alignments and labels come along); the plain
# sentence list when there is no demo set yet.
run_data() {
	local n=$1 out=$2 k=0
	if [ -f "$DEMO" ]; then
		out=${out%.*}.jsonl
		: >"$out"
		while [ "$(wc -l <"$out")" -lt "$n" ]; do
			"$PY" -c 'import json, sys
for n, line in enumerate(open(sys.argv[1], encoding="utf-8"), 1):
    if line.strip():
        ex = json.loads(line)
        ex["id"] = "{}-r{}".format(ex.get("id", n), sys.argv[2])
        print(json.dumps(ex, ensure_ascii=False))' "$DEMO" "$k" >>"$out"
			k=$((k + 1))
		done
		head -n "$n" "$out" >"$out.tmp" && mv "$out.tmp" "$out"
	else
		out=${out%.*}.txt
		first_n "$n" "$out"
	fi
	echo "$out"
}

# attnaudit_run N: times `attnaudit run` on N examples; sets RUN_WALL,
# RUN_RSS and RUN_MANIFEST, or returns non-zero.
attnaudit_run() {
	local n=$1 data
	data=$(run_data "$n" "$WORK/run-data-$n.txt")
	RUN_WALL="" RUN_RSS="" RUN_MANIFEST=""
	timed "run-$n" "$BIN" run --checkpoint "$CKPT" --data "$data" --output-dir "$WORK/run-$n" \
		--provider cpu --threads "$THREADS" || { fail_note "run-$n"; return 1; }
	RUN_WALL=$WALL RUN_RSS=$RSS_MB
	RUN_MANIFEST=$(manifest_of "run-$n" "$WORK/run-$n")
}

bench_run() {
	emit ""
	emit "### attnaudit run on $RUN_N examples (stages from manifest.json)"
	emit ""
	[ "$GO_OK" = 1 ] || { emit "Not measured: bin/attnaudit does not build."; return; }
	attnaudit_run "$RUN_N" || return
	RSS_DONE[$RUN_N]=$RUN_RSS
	WALL_DONE[$RUN_N]=$RUN_WALL
	emit "| stage | seconds | examples/s |"
	emit "| --- | ---: | ---: |"
	if [ -n "$RUN_MANIFEST" ]; then
		jget "$RUN_MANIFEST" "'\n'.join(f'| {k} | {v[\"seconds\"]:.2f} | {$RUN_N / v[\"seconds\"]:.1f} |'
			for k, v in sorted(d['stages'].items(), key=lambda kv: kv[1].get('finished', '')))" >>"$SECTION"
	else
		emit "| (no manifest.json found) | | |"
	fi
	emit "| whole command (wall) | $RUN_WALL | $(per_s "$RUN_N" "$RUN_WALL") |"
	emit ""
	emit "Provider: $(jget "$RUN_MANIFEST" "d.get('provider')" 2>/dev/null); ORT $(jget "$RUN_MANIFEST" "d.get('tool', {}).get('ort_version')" 2>/dev/null); peak RSS ${RUN_RSS} MB."
}

bench_visualize() {
	local file=$WORK/visualize.txt go_wall="" seed_wall="" go_png=0 seed_png=0 r
	first_n "$VIS_N" "$file"
	emit ""
	emit "### visualize on $VIS_N sentences: attnaudit visualize --file vs the seed's matplotlib (bench/seed_visualize.py)"
	emit ""
	emit "Both translate every sentence with the same checkpoint and write the three PNGs per sentence for the last decoder layer; times are whole-process wall clock (start-up, imports and model load included, as a user sees it)."
	emit ""
	if [ "$GO_OK" = 1 ]; then
		if timed vis-go "$BIN" visualize --checkpoint "$CKPT" --file "$file" --layer -1 \
			--output-dir "$WORK/vis-go" --provider cpu --threads "$THREADS"; then
			go_wall=$WALL
		else
			fail_note vis-go
		fi
		go_png=$(find "$WORK/vis-go" -name '*.png' 2>/dev/null | wc -l)
	fi
	if timed vis-seed "$PY" bench/seed_visualize.py --checkpoint "$CKPT" --file "$file" --layer -1 \
		--output-dir "$WORK/vis-seed" --threads "$THREADS"; then
		seed_wall=$WALL
		cat "$WORK/vis-seed.out" >>"$WORK/raw.txt"
	else
		fail_note vis-seed
	fi
	seed_png=$(find "$WORK/vis-seed" -name '*.png' 2>/dev/null | wc -l)
	r=$(ratio "${seed_wall:-0}" "${go_wall:-0}")
	emit "| tool | wall s | PNGs | s per sentence |"
	emit "| --- | ---: | ---: | ---: |"
	emit "| attnaudit visualize | ${go_wall:-—} | $go_png | $(ratio "${go_wall:-0}" "$VIS_N") |"
	emit "| seed (PyTorch + matplotlib) | ${seed_wall:-—} | $seed_png | $(ratio "${seed_wall:-0}" "$VIS_N") |"
	emit ""
	emit "Ratio seed / attnaudit: **$r** (target ≥ 10x: $(meets "$r" 10))."
	if [ -s "$WORK/vis-seed.out" ]; then
		emit "Seed breakdown: $(jget "$WORK/vis-seed.out" "f'imports {d[\"seconds_imports\"]} s, translate {d[\"seconds_translate\"]} s, plot {d[\"seconds_plot\"]} s'")."
	fi
	[ "$GO_OK" = 1 ] || emit "attnaudit not measured: bin/attnaudit does not build."
}

# too_big N: whether a run on N examples, extrapolated linearly from the
# smallest measured run, would take more than half the available memory (a
# shared machine must not be pushed into swap or the OOM killer).
too_big() {
	local n=$1 n0=$2 rss0=$3 avail
	avail=$(awk '/MemAvailable/ { printf "%.0f", $2 / 1024 }' /proc/meminfo)
	EXTRAPOLATED=$(awk -v n="$n" -v n0="$n0" -v r="$rss0" 'BEGIN { printf "%.0f", r * n / n0 }')
	[ "$EXTRAPOLATED" -gt $((avail / 2)) ]
}

bench_rss() {
	local n prev="" prev_n="" rss wall
	emit ""
	emit "### Peak RSS of attnaudit run (GNU time, maximum resident set size)"
	emit ""
	[ "$GO_OK" = 1 ] || { emit "Not measured: bin/attnaudit does not build."; return; }
	emit "| examples | wall s | peak RSS MB | RSS vs first |"
	emit "| ---: | ---: | ---: | ---: |"
	for n in $RSS_NS; do
		if [ -n "${RSS_DONE[$n]:-}" ]; then
			rss=${RSS_DONE[$n]} wall=${WALL_DONE[$n]}
		elif [ -n "$prev" ] && [ "${BENCH_FORCE_RSS:-0}" != 1 ] && too_big "$n" "$prev_n" "$prev"; then
			emit "| $n | — | skipped | — |"
			emit ""
			emit "Skipped $n examples: were memory to grow linearly from the $prev_n-example run, it would need about $EXTRAPOLATED MB, more than half the memory available (BENCH_FORCE_RSS=1 runs it anyway)."
			continue
		else
			attnaudit_run "$n" || continue
			rss=$RUN_RSS wall=$RUN_WALL
		fi
		[ -n "$prev" ] || prev=$rss prev_n=$n
		emit "| $n | $wall | $rss | $(ratio "$rss" "$prev") |"
	done
	emit ""
	emit "Flat means the last column stays near 1 while the examples grow tenfold (memory bounded by batch and chunk size, SPEC §7)."
}

# report_row N WHAT PAGE MANIFEST: one row of the report table.
report_row() {
	local n=$1 what=$2 page=$3 manifest=$4 out
	out=$WORK/pageopen-$n-$what.json
	printf '    %s\n' "bench/pageopen -runs 3 $page" >>"$WORK/commands.txt"
	if ! "$WORK/pageopen" -runs 3 "$page" >"$out" 2>"$out.err"; then
		emit "| $n | $what | — | — | — | — | — | failed: $(tail -n1 "$out.err" | tr '|' ' ') | | |"
		FAILED=1
		return
	fi
	"$PY" - "$out" "$page" "$n" "$what" "$(stage_seconds "$manifest" report)" >>"$SECTION" <<'PY'
import json, re, sys
r = json.load(open(sys.argv[1]))
page = open(sys.argv[2], encoding="utf-8").read()
blobs = sum(len(b) for b in re.findall(r'data-z="([^"]*)"', page))
shown = len(re.findall(r'<section class="example"', page))
mb = lambda b: f"{b / 1e6:.1f}"
print(f"| {sys.argv[3]} | {sys.argv[4]} | {shown} | {r['explorers']} | {mb(r['bytes'])} | {mb(blobs)} | {sys.argv[5] or '—'} "
      f"| {r['dom_content_loaded_ms']:.0f} | {r['load_ms']:.0f} | {r['first_explorer_ms']:.0f} |".replace("| -1 |", "| — |"))
PY
}

# bench_report: report.html on runs of REPORT_NS examples, as `run` writes
# it (the worst 40 and 20 drawn at random, plus the gallery) and with every
# example shown (`report --worst-examples N --sample-examples N`).
bench_report() {
	local n dir data
	emit ""
	emit "### report.html: size and open time in headless Chromium (bench/pageopen)"
	emit ""
	[ "$GO_OK" = 1 ] || { emit "Not measured: bin/attnaudit does not build."; return; }
	if ! go build -o "$WORK/pageopen" ./bench/pageopen >"$WORK/pageopen.err" 2>&1; then
		emit "Not measured: bench/pageopen does not build: $(head -n2 "$WORK/pageopen.err" | tr '\n' ' ')"
		return
	fi
	emit "Times are the browser's own (PerformanceNavigationTiming, from navigation start), medians of 3 fresh tabs; \"first explorer\" is from scrolling to the first example's explorer until it has decoded its data and drawn. Explorer data is the base64 of the zlib'd, byte-quantised attention (every kind, layer and head) of each shown example."
	emit ""
	emit "| run examples | report | example sections | explorers | MB | explorer data MB | report stage s | DOMContentLoaded ms | load ms | first explorer ms |"
	emit "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
	for n in $REPORT_NS; do
		if [ ! -d "$WORK/run-$n" ]; then
			attnaudit_run "$n" || continue
		fi
		data=$(ls "$WORK"/run-data-"$n".* | head -n1)
		dir=$(dirname "$(find "$WORK/run-$n" -name manifest.json | head -n1)")
		# Written again, so that a reused BENCH_WORK measures this build.
		timed "report-$n-default" "$BIN" report --checkpoint "$CKPT" --data "$data" --output-dir "$WORK/run-$n" ||
			{ fail_note "report-$n-default"; continue; }
		cp "$dir/report.html" "$WORK/report-$n-default.html"
		report_row "$n" default "$WORK/report-$n-default.html" "$dir/manifest.json"
		# The same page with the explorer cut out: what the explorer costs.
		"$PY" -c 'import re, sys
s = open(sys.argv[1], encoding="utf-8").read()
s = re.sub(r"(?s)<div id=\"explorer-data\".*?</script>|<div class=\"explorer\".*?</div>", "", s)
open(sys.argv[2], "w", encoding="utf-8").write(s)' "$WORK/report-$n-default.html" "$WORK/report-$n-noexplorer.html"
		report_row "$n" "default without explorer" "$WORK/report-$n-noexplorer.html" "$dir/manifest.json"
		if timed "report-$n-all" "$BIN" report --checkpoint "$CKPT" --data "$data" --output-dir "$WORK/run-$n" \
			--worst-examples "$n" --sample-examples "$n"; then
			report_row "$n" "every example" "$dir/report.html" "$dir/manifest.json"
		else
			fail_note "report-$n-all"
		fi
	done
}

# scale_cores: the core counts to measure, 1 2 4 8 16 up to nproc, and nproc.
scale_cores() {
	local all k out=""
	all=$(nproc)
	for k in ${BENCH_SCALE_CORES:-1 2 4 8 16 $all}; do
		[ "$k" -le "$all" ] && case " $out " in *" $k "*) ;; *) out="$out $k" ;; esac
	done
	echo $out
}

# pin K: the words that run a command on the first K cores (taskset), so
# that every thread count is measured on that many cores; nothing where
# there is no taskset.
pin() { command -v taskset >/dev/null && echo "taskset -c 0-$(($1 - 1))"; }

# bench_scale: throughput against cores, attnaudit and torch side by side
# at each core count, then the metrics and report stages.
bench_scale() {
	local n=$SCALE_N data=$WORK/scale-data.txt cores bs k
	cores=$(scale_cores)
	first_n "$n" "$data"
	emit ""
	emit "### Core scaling: attnaudit infer vs PyTorch cached, $n sentences, cores: $cores"
	emit ""
	[ "${BENCH_SCALE_REPEAT:-1}" -gt 1 ] && emit "Every figure is the fastest of ${BENCH_SCALE_REPEAT} runs (BENCH_SCALE_REPEAT)." && emit ""
	emit "Each command runs pinned to its first k cores (\`taskset -c 0-(k-1)\`$(command -v taskset >/dev/null || echo ': **not available here, unpinned**')) with \`--threads k\`: attnaudit \`infer --provider cpu --detached-pairs=false\` (its default split, chosen from k and the batches' costs and recorded in manifest.json; seconds from manifest.json, model load included) and \`bench/torch_infer.py --cached --threads k\` (PyTorch eager, torch.set_num_threads(k); model load and a warm-up batch excluded). Greedy, contract 2 (\`$(basename "$CKPT")\`)."
	emit ""
	[ "$GO_OK" = 1 ] || { emit "Not measured: bin/attnaudit does not build."; return; }
	emit "| batch | cores | attnaudit s | attnaudit sent/s | vs its 1 core | torch cached s | torch sent/s | torch vs its 1 core | attnaudit vs torch | ≥ 1x |"
	emit "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | :-: |"
	for bs in 16 64; do
		local go1="" t1=""
		for k in $cores; do
			local go_s="" t_s="" r rep
			# The fastest of BENCH_SCALE_REPEAT runs of each: one run's
			# figure on a shared machine moved by up to 45% (1 core).
			for rep in $(seq "${BENCH_SCALE_REPEAT:-1}"); do
				THREADS=$k PIN=$(pin "$k") go_infer "scale-go-bs$bs-k$k" "$CKPT" cpu "$bs" "$data" && go_s=$(fastest "$go_s" "$GO_S")
				rm -rf "$WORK/scale-go-bs$bs-k$k"
				THREADS=$k PIN=$(pin "$k") torch_infer "scale-torch-bs$bs-k$k" cpu "$bs" "$data" --cached && t_s=$(fastest "$t_s" "$T_S")
			done
			[ "$k" = 1 ] && go1=$go_s t1=$t_s
			r=$(ratio "${t_s:-0}" "${go_s:-0}")
			emit "| $bs | $k | ${go_s:-—} | $(per_s "$n" "${go_s:-0}") | $(ratio "${go1:-0}" "${go_s:-0}") | ${t_s:-—} | $(per_s "$n" "${t_s:-0}") | $(ratio "${t1:-0}" "${t_s:-0}") | $r | $(meets "$r" 1) |"
		done
	done
	emit ""
	emit "attnaudit's split at $k cores (manifest.json): ${GO_USED:-?}. Targets (issue: a 16-core machine): attnaudit ≥ 1x torch at batch 16 and 64 with 16 threads; attnaudit at 16 cores ≥ 8x its 1-core figure."
	[ "${BENCH_SCALE_WHOLE:-1}" = 0 ] || bench_scale_whole "$k" "$data"
	[ "${BENCH_SCALE_STAGES:-1}" = 0 ] || bench_scale_stages "$cores"
}

# bench_scale_whole K DATA: at K cores, the default split (a job of fewer
# batches than threads cuts its costliest batches into slices) against
# batches kept whole (ATTNAUDIT_NO_SLICES=1: wide workers instead), the two
# alternating, the fastest of BENCH_SCALE_REPEAT runs each.
bench_scale_whole() {
	local k=$1 data=$2 n=$SCALE_N bs
	emit ""
	emit "### Slices against batches kept whole, $n sentences, $k cores"
	emit ""
	emit "The same \`infer\` command pinned to $k cores, by default and with \`ATTNAUDIT_NO_SLICES=1\`, alternating; seconds from manifest.json."
	emit ""
	emit "| batch | default s | its split | kept whole s | its split | default vs kept whole |"
	emit "| ---: | ---: | --- | ---: | --- | ---: |"
	for bs in 16 64; do
		local sl="" wh="" sl_used="" wh_used="" rep
		for rep in $(seq "${BENCH_SCALE_REPEAT:-1}"); do
			THREADS=$k PIN=$(pin "$k") go_infer "scale-slices-bs$bs" "$CKPT" cpu "$bs" "$data" && sl=$(fastest "$sl" "$GO_S") && sl_used=$(jget "$(manifest_of "scale-slices-bs$bs" "$WORK/scale-slices-bs$bs")" "d['parallelism']")
			rm -rf "$WORK/scale-slices-bs$bs"
			THREADS=$k PIN="env ATTNAUDIT_NO_SLICES=1 $(pin "$k")" go_infer "scale-whole-bs$bs" "$CKPT" cpu "$bs" "$data" && wh=$(fastest "$wh" "$GO_S") && wh_used=$(jget "$(manifest_of "scale-whole-bs$bs" "$WORK/scale-whole-bs$bs")" "d['parallelism']")
			rm -rf "$WORK/scale-whole-bs$bs"
		done
		emit "| $bs | ${sl:-—} | ${sl_used:-?} | ${wh:-—} | ${wh_used:-?} | $(ratio "${wh:-0}" "${sl:-0}") |"
	done
}

# bench_scale_stages CORES: one run of the metrics data (demo set repeated,
# with references and gold alignments, detached pairs on), then its metrics
# and report stages again at each core count (GOMAXPROCS=k, pinned).
bench_scale_stages() {
	local cores=$1 data dir k base_m="" base_r=""
	data=$(run_data "$SCALE_N" "$WORK/scale-run-data.txt")
	emit ""
	emit "### Core scaling of the metrics and report stages, $SCALE_N examples"
	emit ""
	if ! timed "scale-run" "$BIN" run --checkpoint "$CKPT" --data "$data" --output-dir "$WORK/scale-run" --provider cpu; then
		fail_note scale-run
		return
	fi
	dir=$(tail -n1 "$WORK/scale-run.out")
	emit "\`attnaudit run\` on the demo set repeated to $SCALE_N examples (references, gold alignments, detached pairs), then \`attnaudit metrics --run\` and \`attnaudit report --run\` on that folder with GOMAXPROCS=k, pinned to k cores; seconds from manifest.json."
	emit ""
	emit "| cores | metrics s | vs 1 core | report s | vs 1 core |"
	emit "| ---: | ---: | ---: | ---: | ---: |"
	for k in $cores; do
		local ms="" rs=""
		GOMAXPROCS=$k timed "scale-metrics-k$k" $(pin "$k") "$BIN" metrics --run "$dir" && ms=$(stage_seconds "$dir/manifest.json" metrics)
		GOMAXPROCS=$k timed "scale-report-k$k" $(pin "$k") "$BIN" report --run "$dir" && rs=$(stage_seconds "$dir/manifest.json" report)
		[ "$k" = 1 ] && base_m=$ms base_r=$rs
		emit "| $k | ${ms:-—} | $(ratio "${base_m:-0}" "${ms:-0}") | ${rs:-—} | $(ratio "${base_r:-0}" "${rs:-0}") |"
	done
	[ "${BENCH_KEEP:-0}" = 1 ] || rm -rf "$WORK/scale-run"
}

declare -A RSS_DONE WALL_DONE
ensure_gnu_time
pick_checkpoint
ensure_sentences
build_go
machine_header "CPU, $MODE (BENCH=${BENCH:-all})"
wants infer && infer_contracts cpu cpu "$INFER_BS" "$INFER_N"
case ",${BENCH:-}," in *,infer-c1,*) infer_compare cpu cpu "$INFER_BS" "$INFER_N" ;; esac
wants run && bench_run
wants visualize && bench_visualize
wants rss && bench_rss
wants report && bench_report
wants scale && bench_scale
finish
[ "$FAILED" = 0 ] && [ "$GO_OK" = 1 ]
