#!/usr/bin/env bash
# Evaluate the demo zoo on the demo TEST split (clean + L-inf PGD-10 at 4/255), then write
# docs/results-demo.md and leaderboards/demo/ from those runs. Run once, after training; nothing is tuned here.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
RUNS=${1:-runs/results-demo}
for m in backbone fare tecoa pmg-aft rlbind; do
  $BIN/rlbind-bench run --model "demo/$m" --suite clean --threats linf-pgd --eps 4/255 --steps 10 \
    --out "$RUNS/$m" --no-progress
done
$BIN/python scripts/results_demo.py "$RUNS" --out docs/results-demo.md
rm -rf leaderboards/demo
$BIN/rlbind-bench leaderboard "$RUNS"/* --reference demo/backbone --out leaderboards/demo
mkdir -p leaderboards/demo/runs
for m in backbone fare tecoa pmg-aft rlbind; do
  mkdir -p "leaderboards/demo/runs/$m"
  cp "$RUNS/$m"/{run.json,samples.parquet,summary.parquet} "leaderboards/demo/runs/$m/"
done
