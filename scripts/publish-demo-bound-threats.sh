#!/usr/bin/env bash
# The threats only bound encoders have (issue #17), on the demo zoo's TEST split: label-free embedding PGD,
# cross-modal targeted PGD (to a class text; audio, video, thermal also to a digit image), transfer from demo/backbone, audio L-inf at dB budgets (+ L-inf PGD, which ranks),
# 50 samples per dataset (a fixed subset, by sample-id hash); retrieval between the demo's modalities (relevance by class: the demo's samples are
# not paired across modalities), clean and with the query attacked; then leaderboards/demo-bound/ from those
# runs. Settings are the attacks/*.yaml defaults and the flags below, stored in each run.json. Nothing is tuned.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
RUNS=${1:-runs/demo-bound}
N=${N:-50}
MODELS=(backbone fare-s0 tecoa-s0 pmg-aft-s0 rlbind-s0)
for m in "${MODELS[@]}"; do
  $BIN/rlbind-bench run --model "demo/$m" --suite clean --n-samples "$N" \
    --threats linf-pgd,embedding-linf,crossmodal-linf,crossmodal-to-image,transfer-linf,linf-pgd-db --transfer-from demo/backbone \
    --out "$RUNS/$m" --no-progress
  $BIN/rlbind-bench retrieve --model "demo/$m" --datasets demo-digits-retrieval --n-items "$N" \
    --pairs audio:image,image:audio,video:audio,text:image,text:audio,text:video --eps 0,1/255,4/255 \
    --side query --out "$RUNS/retrieval-$m"
done
# The committed run folders first, then the board from them (so `rlbind-bench leaderboard` on the committed
# folders regenerates it byte for byte: tests/test_published_leaderboards.py).
rm -rf leaderboards/demo-bound
for m in "${MODELS[@]}"; do
  mkdir -p "leaderboards/demo-bound/runs/$m" "leaderboards/demo-bound/runs/retrieval-$m"
  cp "$RUNS/$m"/{run.json,samples.parquet,summary.parquet} "leaderboards/demo-bound/runs/$m/"
  cp "$RUNS/retrieval-$m"/{run.json,retrieval.parquet,retrieval_summary.parquet} \
    "leaderboards/demo-bound/runs/retrieval-$m/"
done
$BIN/rlbind-bench leaderboard leaderboards/demo-bound/runs/* --reference demo/backbone --out leaderboards/demo-bound
