#!/usr/bin/env bash
# Ablation of RLBind stage 2's terms at demo scale, on the VAL split (never test): stage 2 is rerun from the
# zoo's stage-1 result with one term switched off, then clean + L-inf PGD-10 at 4/255 are measured.
# docs/method.md holds the table (scripts/ablation_table.py prints it from OUT).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
DS=demo-digits-image,demo-digits-audio,demo-digits-thermal-sim,demo-digits-video
STAGE1=${STAGE1:-zoo/demo/rlbind/stage1-rlbind-stage1/checkpoint/model}
OUT=${1:-runs/ablation}
VARIANTS=(full no-anchor no-align no-mmd)
declare -A FLAGS=(
  [full]=""
  [no-anchor]="--weight anchor=0"
  [no-align]="--align-weight 0"
  [no-mmd]="--mmd-weight 0"
)
for name in "${VARIANTS[@]}"; do
  if [[ ! -f "$OUT/$name/rlbind-model.json" ]]; then
    # shellcheck disable=SC2086
    $BIN/rlbind-bench train --recipe demo/rlbind-stage2 --init "$STAGE1" --datasets "$DS" --out "$OUT/$name" \
      --no-progress ${FLAGS[$name]}
  fi
  $BIN/rlbind-bench run --model "$OUT/$name" --datasets "$DS" --split val --n-samples 200 --threats linf-pgd \
    --eps 4/255 --steps 10 --out "$OUT/$name-eval" --no-progress
done
$BIN/python scripts/ablation_table.py "$OUT" "${VARIANTS[@]}"
