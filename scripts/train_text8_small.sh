#!/usr/bin/env bash
# Train the six text8-small models bundled with edlm and export them (bf16) into src/edlm/checkpoints/.
# Two CPU cores, one thread per run, two runs at a time (see the checkpoints' README for the wall times):
#   core 1: MDLM in two stages (the text8-small recipe: batch 16, 5,600 steps, about 60 min; then 5,000 more
#           steps from its EMA weights: another data order, peak lr 1e-3, decay over the last 30%, about
#           45 min), then NCE from it (250 steps, about 10 min)
#   core 2: AR (2,300 steps, about 70 min), then the oracle AR (another seed and data order, 1,700 steps)
# Every model but the MDLM was trained with the recipe's earlier optimiser schedule (batch 32, 100
# warm-up steps, cosine decay): OLD pins it.
# Runs resume where they stopped when the script is run again (every run checkpoints every 200 or 400 steps).
#   EDLM_DATA=/path/to/data bash scripts/train_text8_small.sh
set -euo pipefail
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
RUNS=${RUNS:-runs}
OLD=(train.batch_size=32 train.warmup_steps=100 train.lr_schedule=cosine train.log_every=20 train.eval_every=400
     train.save_every=200)
AR=(model.causal=true train.objective=ar "${OLD[@]}")

mdlm_then_nce() {
  edlm train text8-small train.out_dir="$RUNS/text8-small-mdlm-stage1" --no-progress
  edlm train text8-small train.init_from="$RUNS/text8-small-mdlm-stage1" train.seed=1 train.steps=5000 train.lr=1e-3 \
    train.warmup_steps=100 train.decay_fraction=0.3 train.out_dir="$RUNS/text8-small-mdlm" --no-progress
  edlm train text8-small "${OLD[@]}" train.objective=nce train.init_from="$RUNS/text8-small-mdlm" \
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
edlm train text8-small "${OLD[@]}" train.objective=sedd train.graph=absorb train.noise=loglinear train.steps=2800 \
  train.out_dir="$RUNS/text8-small-sedd" --no-progress & c=$!
edlm train text8-small "${OLD[@]}" train.objective=sedd train.graph=uniform train.noise=geometric model.adaln=true \
  model.time_conditioning=true train.steps=2800 train.out_dir="$RUNS/text8-small-sedd-uniform" --no-progress & d=$!
wait "$c"; wait "$d"
for name in mdlm ar nce oracle sedd sedd-uniform; do
  edlm export "$RUNS/text8-small-$name" "src/edlm/checkpoints/text8-small-$name" --dtype bfloat16
done
