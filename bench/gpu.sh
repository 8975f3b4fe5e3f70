#!/usr/bin/env bash
# The inference comparison on a GPU machine: attnaudit infer --provider cuda
# on the contract-2 checkpoint against bench/torch_infer.py --device cuda
# --cached and against attnaudit on a contract-1 copy, at batch
# 1/16/64/256 (infer_contracts in bench/lib.sh). Appends a section to
# bench/RESULTS.md.
#
# Needs: bin/attnaudit (built here or copied in; BENCH_BIN), a GPU build of
# ONNX Runtime that attnaudit finds (`make ort-gpu`, pip's onnxruntime-gpu, or
# ATTNAUDIT_ORT_LIB), and a Python with torch (CUDA), onnx and sentencepiece
# (BENCH_PYTHON, default python3).
#
#   bench/gpu.sh                       792 sentences (the set ×4), batch 1/16/64/256
#   BENCH_INFER_N=1024 bench/gpu.sh    more sentences
#   QUICK=1 bench/gpu.sh               smoke test: 64 sentences, batch 1/64
set -uo pipefail
BENCH_PYTHON=${BENCH_PYTHON:-python3}
. "$(dirname "$0")/lib.sh"
SAMPLE_GPU=1
GPU_INDEX=${CUDA_VISIBLE_DEVICES:-0}
GPU_INDEX=${GPU_INDEX%%,*}

if [ "${QUICK:-0}" = 1 ]; then
	MODE="QUICK smoke test" SIZES="1 64" N=64
else
	MODE="full" SIZES="1 16 64 256" N=${BENCH_INFER_N:-792}
fi

command -v nvidia-smi >/dev/null || { log "no nvidia-smi: not a GPU machine"; exit 2; }
pick_checkpoint
ensure_sentences
build_go
machine_header "GPU, $MODE"
emit "- GPU: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader -i "$GPU_INDEX")"
emit "- Memory columns: peak of \`nvidia-smi --query-gpu=memory.used\` sampled every 100 ms while each command ran (whole device, CUDA context included); torch's own \`max_memory_allocated\` beside it."
# The shipped checkpoint is contract 2: attnaudit with the cache vs torch
# with its cache vs attnaudit on a contract-1 copy (bench/lib.sh).
infer_contracts cuda cuda "$SIZES" "$N"
finish
[ "$FAILED" = 0 ] && [ "$GO_OK" = 1 ]
