#!/usr/bin/env bash
# One device call on the GPU machine (see ../shared/tools/gpu-ort.md): unpack
# ONNX Runtime with its CUDA provider plugin, run the embedded-default job
# with CUDA (time, GPU memory), run its infer stage again on the CPU and
# compare attention, then the CUDA-vs-PyTorch inference benchmark
# (bench/gpu.sh). Everything worth keeping goes to $OUT.
#
# Carried: .gpu-ort (the ORT parts and zstd, parts already in /root/ort-parts
# from earlier calls) and .gpu-bin (attnaudit.zst and attncmp.zst, built
# here with `make gpu-bin`).
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p /root/ort-parts "$OUT"
cp .gpu-ort/* /root/ort-parts/
bash /root/ort-parts/gpu-ort-unpack.sh /root/ort-parts /root/ort >/dev/null || exit 1
export LD_LIBRARY_PATH=/root/ort:/usr/local/cuda/lib64:/usr/local/cuda-13.0/targets/x86_64-linux/lib:/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
export ATTNAUDIT_ORT_LIB=/root/ort/libonnxruntime.so ATTNAUDIT_ORT_CUDA_PLUGIN=/root/ort/libonnxruntime_providers_cuda.so
Z=/root/ort-parts/zstd
mkdir -p bin
$Z -d -q -f .gpu-bin/attnaudit.zst -o bin/attnaudit && $Z -d -q -f .gpu-bin/attncmp.zst -o bin/attncmp && chmod +x bin/* || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"

# 0. A smoke test on three sentences; without CUDA nothing below is worth the time.
head -3 examples/data/demo.jsonl >/tmp/three.jsonl
if ! bin/attnaudit run --provider cuda --data /tmp/three.jsonl --output-dir /tmp/smoke >"$OUT/smoke.log" 2>&1; then
	echo "smoke test failed"; head -60 "$OUT/smoke.log"; exit 1
fi
head -5 "$OUT/smoke.log"

# 1. The README's main job with CUDA, GPU memory sampled every 100 ms.
nvidia-smi --query-gpu=timestamp,memory.used,utilization.gpu --format=csv -lms 100 >"$OUT/gpu-memory.csv" &
smi=$!
/usr/bin/time -v bin/attnaudit run --provider cuda --output-dir /tmp/runs-cuda >"$OUT/run-cuda.log" 2>&1
echo "run --provider cuda: exit $?" | tee -a "$OUT/summary.txt"
kill $smi
run=$(ls -d /tmp/runs-cuda/*/ | head -1)
cp "$run/manifest.json" "$OUT/manifest-cuda.json"
python3 - "$OUT" <<'PY' | tee -a "$OUT/summary.txt"
import csv, json, sys
out = sys.argv[1]
m = json.load(open(f"{out}/manifest-cuda.json"))
print("provider:", m["provider"], "stages:", {k: round(v["seconds"], 2) for k, v in m["stages"].items()})
rows = list(csv.reader(open(f"{out}/gpu-memory.csv")))[1:]
mem = [int(r[1].split()[0]) for r in rows if len(r) > 1]
util = [int(r[2].split()[0]) for r in rows if len(r) > 2]
print(f"GPU memory used: peak {max(mem)} MiB (idle {min(mem)} MiB); utilisation peak {max(util)}%, samples {len(mem)}")
PY
grep -E "Elapsed|Maximum resident" "$OUT/run-cuda.log" | tee -a "$OUT/summary.txt"

# 2. The same infer stage on the CPU, and attention compared to 1e-3.
bin/attnaudit infer --provider cpu --output-dir /tmp/runs-cpu >"$OUT/infer-cpu.log" 2>&1
echo "infer --provider cpu: exit $?" | tee -a "$OUT/summary.txt"
bin/attncmp -tol 1e-3 "$run" "$(ls -d /tmp/runs-cpu/*/ | head -1)" 2>&1 | tee -a "$OUT/summary.txt"

# 3. attnaudit (CUDA) vs PyTorch eager (CUDA) at batch 1/16/64/256.
BENCH_BIN=$PWD/bin/attnaudit BENCH_PYTHON=python3 BENCH_RESULTS="$OUT/RESULTS-gpu.md" \
	timeout "${GPU_BENCH_SECONDS:-330}" bash bench/gpu.sh >"$OUT/gpu-bench.log" 2>&1
echo "bench/gpu.sh: exit $?" | tee -a "$OUT/summary.txt"
