#!/usr/bin/env bash
# Train the demo zoo from the committed recipes in recipes/demo/ (docs/zoo.md), resumably: a model whose folder
# already holds training.json is kept, and an interrupted training resumes from its checkpoint.
#   1. demo/backbone: three binding phases on the pretraining mix (digits + Fashion-MNIST + letters);
#   2. every robust fine-tune on the digits train split only, one model per (method, seed).
# Usage: [METHODS="fare tecoa"] scripts/train-demo-zoo.sh [OUT] [SEEDS]   (defaults: zoo/demo-next, "0 1 2", all
# four methods; two invocations with other METHODS may run side by side, e.g. with OMP_NUM_THREADS=1 each)
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
  for recipe in ${METHODS:-fare tecoa pmg-aft rlbind}; do
    train "demo/$recipe" "$OUT/backbone" "$DIGITS" "$OUT/$recipe-s$seed" --seed "$seed"
  done
  [[ " ${METHODS:-rlbind} " == *" rlbind "* ]] || continue
  # RLBind's stage 1 alone, as its own model: the reference that says what stage 2 adds (docs/results-demo.md).
  # Trained by itself with the composite's first stage recipe and seed, it is that stage's result bit for bit
  # (stateless batches and attack starts); the check below compares the weights (or,
  # for a composite trained in another checkout, its stage-1 log).
  stage1_recipe=$(sed -n 's/^stages: *\[\([^,]*\),.*/\1/p' recipes/demo/rlbind.yaml)
  train "$stage1_recipe" "$OUT/backbone" "$DIGITS" "$OUT/rlbind-stage1-s$seed" --seed "$seed"
  $BIN/python - "$OUT/rlbind-s$seed" "$OUT/rlbind-stage1-s$seed" <<'PY'
import csv
import sys
from pathlib import Path

from safetensors.torch import load_file

composite, alone = Path(sys.argv[1]), Path(sys.argv[2])
inside = sorted(composite.glob("stage1-*/checkpoint/model/model.safetensors"))
if inside:
    a, b = load_file(inside[0]), load_file(alone / "model.safetensors")
    same = a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)
    what = f"the same weights as {inside[0].parent}"
else:
    # The composite's stage-1 weights are not committed (zoo/**/checkpoint/ is ignored): a composite trained in
    # an earlier checkout is compared by its stage-1 training log, every loss of every step, timing excluded.
    def losses(path):
        with open(path) as fh:
            return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(fh)]
    (log,) = composite.glob("stage1-*/train_log.csv")
    same = losses(log) == losses(alone / "train_log.csv")
    what = f"the same per-step losses as {log} (its weights are not in this checkout)"
print(f"{alone}: {'' if same else 'NOT '}{what}")
sys.exit(0 if same else 1)
PY
done

