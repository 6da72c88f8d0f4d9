#!/usr/bin/env bash
# The threats only bound encoders have (issue #17), on the demo zoo's TEST split: label-free embedding PGD,
# cross-modal targeted PGD, transfer from demo/backbone, audio L-inf at dB budgets (+ L-inf PGD, which ranks),
# 100 samples per dataset; then leaderboards/demo-bound/ from those runs (and, when `retrieve` exists, the
# retrieval runs). Settings are the attacks/*.yaml defaults, stored in each run.json. Nothing is tuned here.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
RUNS=${1:-runs/demo-bound}
N=${N:-100}
MODELS=(backbone fare tecoa pmg-aft rlbind)
for m in "${MODELS[@]}"; do
  $BIN/rlbind-bench run --model "demo/$m" --suite clean --n-samples "$N" \
    --threats linf-pgd,embedding-linf,crossmodal-linf,transfer-linf,linf-pgd-db --transfer-from demo/backbone \
    --out "$RUNS/$m" --no-progress
done
rm -rf leaderboards/demo-bound
$BIN/rlbind-bench leaderboard "$RUNS"/* --reference demo/backbone --out leaderboards/demo-bound
mkdir -p leaderboards/demo-bound/runs
for m in "${MODELS[@]}"; do
  mkdir -p "leaderboards/demo-bound/runs/$m"
  cp "$RUNS/$m"/{run.json,samples.parquet,summary.parquet} "leaderboards/demo-bound/runs/$m/"
done
