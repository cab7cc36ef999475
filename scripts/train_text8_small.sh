#!/usr/bin/env bash
# Train the six text8-small models bundled with edlm and export them (bf16) into src/edlm/checkpoints/.
# Two CPU cores, one thread per run, two runs at a time (about 3 core-hours, 90 min wall when the
# bundle of 2026-12-03 was trained, with the oracle started beside them; see the checkpoints' README):
#   core 1: MDLM (2,800 steps, about 80 min), then NCE from it (250 steps, about 10 min)
#   core 2: AR (2,300 steps, about 70 min), then the oracle AR (another seed and data order, 1,700 steps)
# Runs resume where they stopped when the script is run again (every run checkpoints every 200 steps).
#   EDLM_DATA=/path/to/data bash scripts/train_text8_small.sh
set -euo pipefail
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
RUNS=${RUNS:-runs}
AR=(model.causal=true train.objective=ar)

mdlm_then_nce() {
  edlm train text8-small train.steps=2800 train.out_dir="$RUNS/text8-small-mdlm" --no-progress
  edlm train text8-small train.objective=nce train.init_from="$RUNS/text8-small-mdlm" \
    train.nce_negatives=1 train.steps=250 train.lr=5e-4 train.warmup_steps=25 \
    train.out_dir="$RUNS/text8-small-nce" --no-progress
}
ar_then_oracle() {
  edlm train text8-small "${AR[@]}" train.steps=2300 train.out_dir="$RUNS/text8-small-ar" --no-progress
  edlm train text8-small "${AR[@]}" train.seed=1 train.steps=1700 train.out_dir="$RUNS/text8-small-oracle" \
    --no-progress
}
mdlm_then_nce & a=$!
ar_then_oracle & b=$!
wait "$a"; wait "$b"
# The SEDD baselines, trained after the four, one per core (about 50 min each on an idle core): the
# absorbing graph with log-linear noise, and the uniform graph with geometric noise, whose scores depend
# on sigma, so its network is conditioned on it (adaLN on sigma, 1.28M parameters).
edlm train text8-small train.objective=sedd train.graph=absorb train.noise=loglinear train.steps=2800 \
  train.out_dir="$RUNS/text8-small-sedd" --no-progress & c=$!
edlm train text8-small train.objective=sedd train.graph=uniform train.noise=geometric model.adaln=true \
  model.time_conditioning=true train.steps=2800 train.out_dir="$RUNS/text8-small-sedd-uniform" --no-progress & d=$!
wait "$c"; wait "$d"
for name in mdlm ar nce oracle sedd sedd-uniform; do
  edlm export "$RUNS/text8-small-$name" "src/edlm/checkpoints/text8-small-$name" --dtype bfloat16
done
