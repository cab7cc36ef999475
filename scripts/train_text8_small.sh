#!/usr/bin/env bash
# Train the four text8-small models bundled with edlm and export them (bf16) into src/edlm/checkpoints/.
# Two CPU cores, one thread per run, two runs at a time: phase 1 about 35 min, phase 2 about 30 min.
# Runs resume where they stopped when the script is run again (every run checkpoints every 200 steps).
#   EDLM_DATA=/path/to/data bash scripts/train_text8_small.sh
set -euo pipefail
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
RUNS=${RUNS:-runs}
AR=(model.causal=true model.adaln=false train.objective=ar)

edlm train text8-small train.steps=1600 train.out_dir="$RUNS/text8-small-mdlm" --no-progress & a=$!
edlm train text8-small "${AR[@]}" train.steps=1400 train.out_dir="$RUNS/text8-small-ar" --no-progress & b=$!
wait "$a"; wait "$b"
edlm train text8-small train.objective=nce train.init_from="$RUNS/text8-small-mdlm" \
  train.nce_negatives=1 train.steps=500 train.lr=5e-4 train.warmup_steps=50 \
  train.out_dir="$RUNS/text8-small-nce" --no-progress & a=$!
edlm train text8-small "${AR[@]}" train.seed=1 train.steps=1400 \
  train.out_dir="$RUNS/text8-small-oracle" --no-progress & b=$!
wait "$a"; wait "$b"
for name in mdlm ar nce oracle; do
  edlm export "$RUNS/text8-small-$name" "src/edlm/checkpoints/text8-small-$name" --dtype bfloat16
done
