#!/usr/bin/env bash
# The GPU check and benchmark in one command on a GPU machine without
# network (how the H200 we are lent is reached; see bench/RESULTS.md):
#
#   GPU_STEP=check  bench/gpu-session.sh   CUDA smoke test, the embedded-default job with
#                                           CUDA, its infer stage on the CPU compared with
#                                           bench/attncmp, then bench/gpu.sh against torch
#   GPU_STEP=scale  bench/gpu-session.sh   attnaudit run --provider cuda on GPU_DATA
#                                           (10,000 examples from ../shared/data/ko-en,
#                                           made here by bench/koen_set.py)
#   GPU_STEP=cores  bench/gpu-session.sh   the machine's CPUs: BENCH=scale bench/run.sh
#                                           (attnaudit vs torch at 1..16 cores, metrics and
#                                           report stages), then CPU profiles at every core;
#                                           ONNX Runtime's CPU library from the machine's
#                                           Python onnxruntime (ATTNAUDIT_ORT_LIB otherwise)
#
# Expects ONNX Runtime's GPU build in third_party/onnxruntime-gpu (`make
# ort-gpu`), or, where the machine cannot download it, the parts made by
# ../shared/tools/gpu-stage.sh in GPU_PARTS (unpacked here), and bin/attnaudit
# and bin/attncmp (or .zst copies under GPU_STAGE). Parts travel with the
# working tree (about 36 MB with the contract-2 checkpoints) under a 64 MiB
# limit per call: stage them with PART_MIB=24. Everything worth keeping
# is written under OUT: summary.txt and session.tar.gz (logs, manifests,
# profiles, RESULTS-gpu.md).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-out}
STEP=${GPU_STEP:-check}
PARTS=${GPU_PARTS:-/root/parts}
STAGE=${GPU_STAGE:-.gpu-ort/stage}
GPU_DATA=${GPU_DATA:-$STAGE/koen-10k.tsv}
W=/tmp/gpu-session
mkdir -p "$OUT" "$W" bin
S=$OUT/summary.txt
say() { echo "$*" | tee -a "$S"; }
pack() { tar -czf "$OUT/session-$STEP.tar.gz" --exclude='*.parquet' --exclude='*.html' --exclude='*.png' -C "$W" . 2>/dev/null; }
trap pack EXIT

# ONNX Runtime's GPU build and the binaries (.zst with the parts' zstd, or
# .xz, which Python's lzma reads where there is no zstd).
GPUDIR=third_party/onnxruntime-gpu
if [ "$STEP" != cores ] && [ ! -f "$GPUDIR/libonnxruntime.so.1" ]; then
	[ -d .gpu-ort/parts ] && cp .gpu-ort/parts/* "$PARTS"/ 2>/dev/null
	mkdir -p "$GPUDIR"
	cat "$PARTS"/payload.tar.zst.part* | "$PARTS/zstd" -d -q --long=27 | tar -xf - -C "$GPUDIR" || { say "unpacking ORT failed"; exit 1; }
	mv "$GPUDIR"/libonnxruntime.so.1.* "$GPUDIR/libonnxruntime.so.1"
fi
PY=python3
[ -x /opt/torch/.venv/bin/python3 ] && PY=/opt/torch/.venv/bin/python3
for b in attnaudit attncmp; do
	[ -f "$STAGE/$b.zst" ] && "$PARTS/zstd" -d -q -f "$STAGE/$b.zst" -o "bin/$b" && chmod +x "bin/$b"
	[ -f "$STAGE/$b.xz" ] && "$PY" -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$STAGE/$b.xz" "bin/$b" && chmod +x "bin/$b"
done
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$S"
say "cores: $(nproc); python for torch: $PY"

# gpu_mem_start FILE / gpu_mem_stop FILE: nvidia-smi memory.used every 100 ms.
gpu_mem_start() { nvidia-smi --query-gpu=memory.used,utilization.gpu --format=csv,noheader,nounits -lms 100 >"$1" 2>/dev/null & SMI=$!; }
gpu_mem_stop() {
	kill "$SMI" 2>/dev/null; wait "$SMI" 2>/dev/null
	awk -F', ' '{ if ($1 > m) m = $1; if ($2 > u) u = $2; s += $2; n++ } END { printf "GPU memory peak %d MiB, utilisation peak %d%% mean %.0f%% (%d samples)\n", m, u, s / (n ? n : 1), n }' "$1"
}
stages() { "$PY" -c 'import json, sys
m = json.load(open(sys.argv[1]))
print("provider", m["provider"], "| ORT", m["tool"]["ort_version"], m["tool"].get("ort_library", ""), "| stages s:", {k: round(v["seconds"], 2) for k, v in m["stages"].items()})' "$1"; }

if [ "$STEP" = check ]; then
	# 0. Smoke test on three sentences: first as a user with only pip's
	# nvidia-* packages (no LD_LIBRARY_PATH), then with the venv's python
	# named, then with LD_LIBRARY_PATH; the first that works is kept.
	head -3 examples/data/demo.jsonl >"$W/three.jsonl"
	smoke() { bin/attnaudit infer --provider cuda --data "$W/three.jsonl" --output-dir "$W/smoke-$1" >"$W/smoke-$1.log" 2>&1; }
	if smoke plain; then
		say "smoke: CUDA works with no LD_LIBRARY_PATH (python3: $(command -v python3))"
	elif ATTNAUDIT_PYTHON=$PY smoke venv; then
		export ATTNAUDIT_PYTHON=$PY
		say "smoke: CUDA works with ATTNAUDIT_PYTHON=$PY (plain python3 failed: $(tail -1 "$W/smoke-plain.log"))"
	else
		export LD_LIBRARY_PATH=$(ls -d /opt/torch/.venv/lib/python3.12/site-packages/nvidia/*/lib | tr '\n' ':')
		if smoke ldpath; then
			say "smoke: CUDA works with LD_LIBRARY_PATH only (venv failed: $(tail -1 "$W/smoke-venv.log"))"
		else
			say "smoke: CUDA failed every way"; tail -20 "$W"/smoke-*.log | tee -a "$S"; exit 1
		fi
	fi
	grep -h onnxruntime "$W"/smoke-*.log | sort -u | head -8 | tee -a "$S"

	# 1. The README's main job with CUDA.
	gpu_mem_start "$W/mem-demo.csv"
	ATTNAUDIT_CPUPROFILE=$W/demo-cuda.pprof /usr/bin/time -v bin/attnaudit run --provider cuda --output-dir "$W/runs-cuda" >"$W/run-cuda.log" 2>&1
	say "run --provider cuda (demo): exit $?; $(gpu_mem_stop "$W/mem-demo.csv")"
	grep -E "Elapsed|Maximum resident" "$W/run-cuda.log" | tee -a "$S"
	run=$(ls -d "$W"/runs-cuda/*/ | head -1)
	cp "$run/manifest.json" "$W/manifest-demo-cuda.json"
	stages "$run/manifest.json" | tee -a "$S"

	# 2. The same infer stage on the CPU (the GPU build's CPU provider), compared.
	bin/attnaudit infer --provider cpu --ort-lib "$GPUDIR/libonnxruntime.so.1" --output-dir "$W/runs-cpu" >"$W/infer-cpu.log" 2>&1
	say "infer --provider cpu (demo): exit $?"
	bin/attncmp -tol 1e-3 "$run" "$(ls -d "$W"/runs-cpu/*/ | head -1)" 2>&1 | tee -a "$S"

	# 3. attnaudit (CUDA) against PyTorch eager (CUDA), batch 1/16/64/256, 792 sentences.
	BENCH_BIN=$PWD/bin/attnaudit BENCH_PYTHON=$PY BENCH_RESULTS="$W/RESULTS-gpu.md" BENCH_WORK=$W/bench BENCH_INFER_N=${BENCH_INFER_N:-792} \
		timeout "${GPU_BENCH_SECONDS:-420}" bash bench/gpu.sh >"$W/gpu-bench.log" 2>&1
	say "bench/gpu.sh: exit $?"
	cp "$W/RESULTS-gpu.md" "$OUT/" 2>/dev/null
	sed -n '/^| batch/,/^$/p' "$W/RESULTS-gpu.md" | tee -a "$S"
fi

if [ "$STEP" = scale ]; then
	[ -n "${GPU_LD_LIBRARY_PATH:-}" ] && export LD_LIBRARY_PATH=$GPU_LD_LIBRARY_PATH
	gpu_mem_start "$W/mem-scale.csv"
	ATTNAUDIT_CPUPROFILE=$W/scale-cuda.pprof /usr/bin/time -v bin/attnaudit run --provider cuda --data "$GPU_DATA" \
		--batch-size "${GPU_BATCH:-64}" --output-dir "$W/runs-scale" >"$W/run-scale.log" 2>&1
	say "run --provider cuda ($(wc -l <"$GPU_DATA") examples of $GPU_DATA, batch ${GPU_BATCH:-64}): exit $?; $(gpu_mem_stop "$W/mem-scale.csv")"
	grep -E "Elapsed|Maximum resident" "$W/run-scale.log" | tee -a "$S"
	run=$(ls -d "$W"/runs-scale/*/ | head -1)
	cp "$run/manifest.json" "$W/manifest-scale-cuda.json"
	stages "$run/manifest.json" | tee -a "$S"
	du -sh "$run" | tee -a "$S"
	tail -5 "$W/run-scale.log" >>"$S"
fi

if [ "$STEP" = cores ]; then
	if [ -z "${ATTNAUDIT_ORT_LIB:-}" ]; then
		ATTNAUDIT_ORT_LIB=$("$PY" -c 'import glob, os, onnxruntime; print(sorted(glob.glob(os.path.join(os.path.dirname(onnxruntime.__file__), "capi", "libonnxruntime.so.1*")))[0])')
		export ATTNAUDIT_ORT_LIB
	fi
	say "ONNX Runtime (CPU): $ATTNAUDIT_ORT_LIB; $(lscpu | grep -E '^Model name|^Thread|^Core|^Socket' | tr -s ' ' | tr '\n' ';')"
	BENCH=scale BENCH_KEEP=1 BENCH_BIN=$PWD/bin/attnaudit BENCH_PYTHON=$PY BENCH_RESULTS="$W/RESULTS-cores.md" BENCH_WORK=$W/bench-cores \
		timeout "${GPU_BENCH_SECONDS:-500}" bash bench/run.sh >"$W/cores-bench.log" 2>&1
	say "BENCH=scale bench/run.sh: exit $?"
	cp "$W/RESULTS-cores.md" "$OUT/" 2>/dev/null
	grep '^|' "$W/RESULTS-cores.md" | tee -a "$S"
	n=$(nproc)
	# infer's own account of the runs at every core (the last of each
	# command's repeats): the split, batches cut, when translation ended,
	# the slowest batch or slice, how long the last part took after it.
	for f in "$W"/bench-cores/scale-go-bs*-k"$n".err "$W"/bench-cores/scale-slices-bs*.err "$W"/bench-cores/scale-whole-bs*.err; do
		[ -f "$f" ] && echo "$(basename "$f" .err): $(grep -E 'threads:|slices$|translated in' "$f" | tr '\n' ' ')" | tee -a "$S"
	done
	# Where the time goes at every core: infer (batch 64), metrics, report.
	run=$(ls -d "$W"/bench-cores/scale-run/*/ 2>/dev/null | head -1)
	if [ -n "$run" ]; then
		ATTNAUDIT_CPUPROFILE=$OUT/metrics-$n.pprof bin/attnaudit metrics --run "$run" >"$W/prof-metrics.log" 2>&1
		ATTNAUDIT_CPUPROFILE=$OUT/report-$n.pprof bin/attnaudit report --run "$run" >"$W/prof-report.log" 2>&1
		stages "$run/manifest.json" | tee -a "$S"
	fi
	ATTNAUDIT_CPUPROFILE=$OUT/infer-$n.pprof bin/attnaudit infer --provider cpu --batch-size 64 --detached-pairs=false \
		--data "$W/bench-cores/scale-data.txt" --output-dir "$W/prof-infer" >"$W/prof-infer.log" 2>&1
	stages "$(ls -d "$W"/prof-infer/*/ | head -1)/manifest.json" | tee -a "$S"
fi
