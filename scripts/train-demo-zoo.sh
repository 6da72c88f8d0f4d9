#!/usr/bin/env bash
# Train the demo zoo from the committed recipes in recipes/demo/ (docs/zoo.md), resumably: a model whose folder
# already holds training.json is kept, and an interrupted training resumes from its checkpoint.
#   1. demo/backbone: three binding phases on the pretraining mix (digits + Fashion-MNIST + letters);
#   2. every robust fine-tune on the digits train split only, one model per (method, seed).
# Usage: scripts/train-demo-zoo.sh [OUT] [SEEDS]   (defaults: zoo/demo-next, "0 1 2")
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
OUT=${1:-zoo/demo-next}
SEEDS=${2-0 1 2}  # "" (given): the backbone only
DIGITS=demo-digits-image,demo-digits-audio,demo-digits-thermal-sim,demo-digits-video
MIX=$DIGITS,demo-fashion-image,demo-fashion-thermal-sim,demo-fashion-video,demo-letters-audio
$BIN/rlbind-bench data prepare demo

train() {  # train RECIPE INIT DATASETS OUT [overrides...]
  local recipe=$1 init=$2 ds=$3 out=$4
  shift 4
  if [[ -f "$out/training.json" ]]; then echo "kept: $out"; return; fi
  $BIN/rlbind-bench train --recipe "$recipe" --init "$init" --datasets "$ds" --out "$out" --no-progress "$@"
}

if [[ ! -f "$OUT/backbone/training.json" ]]; then
  train demo/backbone demo/init "$MIX" "$OUT/backbone-phase1"
  train demo/backbone-av "$OUT/backbone-phase1" "$MIX" "$OUT/backbone-phase2"
  train demo/backbone-audio "$OUT/backbone-phase2" "$MIX" "$OUT/backbone"
  for phase in phase1 phase2; do  # the earlier phases' cards and logs stay with the backbone, their weights go
    mkdir -p "$OUT/backbone/$phase"
    mv "$OUT/backbone-$phase"/{README.md,training.json,train_log.csv} "$OUT/backbone/$phase/"
    rm -rf "$OUT/backbone-$phase"
  done
fi
for seed in $SEEDS; do
  for recipe in fare tecoa pmg-aft rlbind; do
    train "demo/$recipe" "$OUT/backbone" "$DIGITS" "$OUT/$recipe-s$seed" --seed "$seed"
  done
  # RLBind's stage 1 alone, as its own model: the reference that says what stage 2 adds (docs/results-demo.md).
  stage1="$OUT/rlbind-s$seed/stage1-rlbind-stage1"
  if [[ ! -f "$OUT/rlbind-stage1-s$seed/rlbind-model.json" ]]; then
    rm -rf "$OUT/rlbind-stage1-s$seed.tmp"
    cp -r "$stage1/checkpoint/model" "$OUT/rlbind-stage1-s$seed.tmp"
    cp "$stage1/train_log.csv" "$OUT/rlbind-stage1-s$seed.tmp/"
    mv "$OUT/rlbind-stage1-s$seed.tmp" "$OUT/rlbind-stage1-s$seed"
  fi
done
