#!/usr/bin/env bash
# Nightly attnaudit on Slurm: a job array runs the infer stage in shards on
# GPU nodes (SLURM_ARRAY_TASK_ID picks the shard), and a dependent job runs
# the remaining stages once every shard succeeded. The run folder lives on
# shared storage (RUNS) seen by all nodes.
#
#   sbatch slurm-array.sh            # submits both jobs
#
#SBATCH --job-name=attnaudit-infer
#SBATCH --array=0-7
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=4
#SBATCH --mem=16G
#SBATCH --time=04:00:00
#SBATCH --requeue
#SBATCH --output=attnaudit-infer-%A_%a.log
set -euo pipefail

SHARDS=8                              # must match --array=0-(SHARDS-1)
CHECKPOINT=${CHECKPOINT:-/shared/checkpoints/latest}
DATA=${DATA:-/shared/data/valid.jsonl}
RUNS=${RUNS:-/shared/attnaudit/runs}
export ATTNAUDIT_ORT_LIB=${ATTNAUDIT_ORT_LIB:-/opt/onnxruntime/lib/libonnxruntime.so}

if [[ -z "${SLURM_ARRAY_TASK_ID:-}" ]]; then
  # Submitted by hand: queue the array and the finalize job that waits for it.
  array=$(sbatch --parsable "$0")
  sbatch --dependency=afterok:"$array" --job-name=attnaudit-finalize \
    --cpus-per-task=8 --mem=16G --time=02:00:00 --output=attnaudit-finalize-%j.log \
    --wrap="attnaudit run --checkpoint=$CHECKPOINT --data=$DATA --output-dir=$RUNS --provider=cpu && \
            attnaudit compare --runs=$RUNS --output=$RUNS/compare.html"
  exit 0
fi

# A requeued task resumes: chunks already written are skipped.
exec attnaudit infer --checkpoint="$CHECKPOINT" --data="$DATA" --output-dir="$RUNS" \
  --provider=cuda --batch-size=64 --shard="/$SHARDS"
