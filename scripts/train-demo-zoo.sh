#!/usr/bin/env bash
# Train the demo zoo (zoo/demo/*) from the committed recipes in recipes/demo/, on the demo data's train split.
# About 50 minutes on a 2-core CPU (50 min 19 s measured, nothing else running). docs/zoo.md lists the figures; tests/test_zoo.py (slow) checks a rerun.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
DS=demo-digits-image,demo-digits-audio,demo-digits-thermal-sim,demo-digits-video
OUT=${1:-zoo/demo}
$BIN/rlbind-bench data prepare demo
$BIN/rlbind-bench train --recipe demo/backbone --init demo/init --datasets "$DS" --out "$OUT/backbone-phase1" \
  --no-progress
$BIN/rlbind-bench train --recipe demo/backbone-av --init "$OUT/backbone-phase1" --datasets "$DS" \
  --out "$OUT/backbone-phase2" --no-progress
$BIN/rlbind-bench train --recipe demo/backbone-audio --init "$OUT/backbone-phase2" --datasets "$DS" \
  --out "$OUT/backbone" --no-progress
rm -rf "$OUT/backbone-phase1" "$OUT/backbone-phase2"
for recipe in fare tecoa pmg-aft rlbind; do
  $BIN/rlbind-bench train --recipe "demo/$recipe" --init "$OUT/backbone" --datasets "$DS" --out "$OUT/$recipe" \
    --no-progress
done
