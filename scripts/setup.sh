#!/usr/bin/env bash
# Create .venv with the pinned lock and rlbind-bench (editable). Idempotent: a second run only checks stamps.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
LOCK=requirements/lock.txt
STAMP=.venv/.lock-$(sha256sum "$LOCK" pyproject.toml | sha256sum | cut -c1-16)

# Debian packages: the demo's data sources (real speech, digit images) and the TTS voices.
# Always run: the script is idempotent and takes well under a second once everything is there, and a stamp
# could outlive what it stamps (a restored .venv on a machine without the packages).
if [ -x scripts/install-demo-sources.sh ]; then
  scripts/install-demo-sources.sh >/dev/null \
    || echo "setup: the demo's Debian sources are missing (see above); the demo and its tests need them" >&2
fi

if [ -f "$STAMP" ]; then
  exit 0
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# pip (not uv/poetry): torch 2.14.1 / torchvision 0.29.1 come from the machine's local wheel folders.
# --no-deps: the lock is a complete freeze, and imagecorruptions' metadata would pull the GUI opencv-python
# beside the headless build the lock pins
.venv/bin/pip install --quiet --disable-pip-version-check --no-deps -r "$LOCK"
# torchattacks 3.5.1's wheel also ships a robustbench/ folder (a commented-out copy) that, installed after
# robustbench in the lock's order, overwrites robustbench's own files; put robustbench's back.
.venv/bin/pip install --quiet --disable-pip-version-check --no-deps --force-reinstall "$(grep '^robustbench==' "$LOCK")"
.venv/bin/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
rm -f .venv/.lock-*
touch "$STAMP"
echo "setup: .venv ready ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
