#!/usr/bin/env bash
# The one-shot GPU benchmark (docs/benchmarks.md, "One-shot device benchmark"): six stages, each its own Python
# process (benchmarks/device_bench.py STAGE), each appending its Markdown block to the output file as soon as it
# has measured it, so a kill keeps every figure measured before it.
#
#   bash benchmarks/device.sh [--dry-run] [--out FILE] [--only STAGE[,STAGE...]]
#
# --out FILE   where the blocks go (default docs/benchmarks.md; on the device machine "$OUT/benchmarks-device.md")
# --dry-run    tiny towers on CPU, few samples and steps: the same code end to end, in a few minutes
# --only       a subset of the stages (env pgd agreement batch autoattack plan), in that order
#
# Python: on the device (no --dry-run) with wheels in .whl/ (benchmarks/fetch-device-wheels.sh), the machine's
# own python3 and its CUDA build of torch, with the wheels installed into /tmp/site ahead of it (no network).
# Otherwise $PYTHON if set, else .venv/bin/python if present, else python3. RLBIND_BENCH_COMMIT names the commit
# where the tree has no .git (the device machine's copy).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODE=device
OUT_FILE="$REPO/docs/benchmarks.md"
STAGES=(env pgd agreement batch autoattack plan)
# Upper limits in seconds per stage on the device (caps against a hang, not budgets): a stage over its cap is
# killed and the next one runs.
declare -A LIMIT=([env]=60 [pgd]=150 [agreement]=90 [batch]=90 [autoattack]=150 [plan]=300)

usage() { sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) MODE=dry-run ;;
    --out) [ $# -ge 2 ] || { echo "device.sh: --out needs a file" >&2; exit 2; }; OUT_FILE="$2"; shift ;;
    --out=*) OUT_FILE="${1#--out=}" ;;
    --only) [ $# -ge 2 ] || { echo "device.sh: --only needs stage names" >&2; exit 2; }
            IFS=, read -r -a ONLY <<<"$2"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "device.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [ -n "${ONLY+x}" ]; then
  for s in "${ONLY[@]}"; do
    [[ " ${STAGES[*]} " == *" $s "* ]] || { echo "device.sh: unknown stage $s (${STAGES[*]})" >&2; exit 2; }
  done
  STAGES=("${ONLY[@]}")
fi

if [ "$MODE" = device ] && compgen -G "$REPO/.whl/*.whl" >/dev/null; then
  SITE="${RLBIND_DEVICE_SITE:-/tmp/site}"
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
    "$REPO"/.whl/*.whl
  export PYTHONPATH="$SITE:$REPO"
  PY="${PYTHON:-python3}"
else
  export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
  if [ -n "${PYTHON:-}" ]; then PY="$PYTHON"
  elif [ -x "$REPO/.venv/bin/python" ]; then PY="$REPO/.venv/bin/python"
  else PY=python3
  fi
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/rlbind-device.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
# Nothing from the network, nothing into the user's caches.
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
export RLBIND_CACHE_DIR="$WORK/cache" PYTHONWARNINGS="${PYTHONWARNINGS:-ignore}"
mkdir -p "$(dirname "$OUT_FILE")"
touch "$OUT_FILE"

failed=()
for stage in "${STAGES[@]}"; do
  echo "== device.sh: stage $stage ($MODE), $(date -u +%H:%M:%S) UTC" >&2
  cmd=("$PY" "$REPO/benchmarks/device_bench.py" "$stage" --mode "$MODE" --out "$OUT_FILE" --work "$WORK")
  if [ "$MODE" = device ] && command -v timeout >/dev/null; then cmd=(timeout "${LIMIT[$stage]}" "${cmd[@]}"); fi
  if ! "${cmd[@]}"; then
    failed+=("$stage")
    printf '\n(device benchmark stage %s failed or was stopped, %s; see its log)\n' "$stage" \
      "$(date -u '+%Y-%m-%d %H:%M UTC')" >>"$OUT_FILE"
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "device.sh: failed stages: ${failed[*]}" >&2
  exit 1
fi
echo "device.sh: all stages done; blocks appended to $OUT_FILE" >&2
