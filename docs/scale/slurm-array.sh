#!/usr/bin/env bash
# Nightly attnaudit on Slurm: a job array runs the infer stage in shards on
# GPU nodes (one shard per array task), and a dependent job runs the
# remaining stages once every shard succeeded. The run folder lives on
# shared storage (RUNS) seen by all nodes.
#
#   ./slurm-array.sh        # run it (not sbatch it): queues the array and the finalize job
#
# and it prints the two job ids. The settings below come from the
# environment (sbatch passes it on to both jobs). CI runs this script as is
# on a one-node cluster (slurm-localhost.sh) with SHARDS=3 and
# PROVIDER=cpu, and checks the result equals an unsharded run row for row.
#
#SBATCH --job-name=attnaudit-infer
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=4
#SBATCH --mem=16G
#SBATCH --time=04:00:00
#SBATCH --requeue
#SBATCH --output=attnaudit-infer-%A_%a.log
set -euo pipefail

SHARDS=${SHARDS:-8}                   # array tasks, one shard each
CHECKPOINT=${CHECKPOINT:-/shared/checkpoints/latest}
DATA=${DATA:-/shared/data/valid.jsonl}
RUNS=${RUNS:-/shared/attnaudit/runs}
CONFIG=${CONFIG:-}                    # a --config YAML for every step, or none
PROVIDER=${PROVIDER:-cuda}            # the infer tasks'; finalize runs no model
BATCH_SIZE=${BATCH_SIZE:-64}          # at most the config's chunk_size
export ATTNAUDIT_ORT_LIB=${ATTNAUDIT_ORT_LIB:-/opt/onnxruntime/lib/libonnxruntime.so}

# Every step names the same checkpoint, data and config, so every step finds
# the same run folder.
flags=(--checkpoint="$CHECKPOINT" --data="$DATA" --output-dir="$RUNS" --batch-size="$BATCH_SIZE")
if [[ -n $CONFIG ]]; then
  flags+=(--config="$CONFIG")
fi

if [[ -z "${SLURM_ARRAY_TASK_ID:-}" ]]; then
  # Run by hand: queue the array, then the finalize job that waits for all of
  # it (and is cancelled rather than left pending if a shard fails).
  array=$(sbatch --parsable --array=0-$((SHARDS - 1)) "$0")
  finalize=$(sbatch --parsable --dependency=afterok:"$array" --kill-on-invalid-dep=yes \
    --job-name=attnaudit-finalize --cpus-per-task=8 --mem=16G --time=02:00:00 \
    --output=attnaudit-finalize-%j.log \
    --wrap="$(printf '%q ' attnaudit run "${flags[@]}" --provider=cpu) && $(printf '%q ' attnaudit compare --runs="$RUNS" --output="$RUNS/compare.html")")
  echo "array $array"
  echo "finalize $finalize"
  exit 0
fi

# One shard per array task: --shard=/N takes the index from
# SLURM_ARRAY_TASK_ID. A requeued task resumes: chunks already written are
# checked and skipped.
exec attnaudit infer "${flags[@]}" --provider="$PROVIDER" --shard="/${SLURM_ARRAY_TASK_COUNT:-$SHARDS}"
