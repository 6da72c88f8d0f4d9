#!/usr/bin/env bash
# Create .venv with the pinned lock and rlbind-bench (editable). Idempotent: a second run only checks stamps.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
LOCK=requirements/lock.txt
STAMP=.venv/.lock-$(sha256sum "$LOCK" pyproject.toml | sha256sum | cut -c1-16)

# Debian packages: the demo's data sources (real speech, digit images) and the TTS voices.
# The stamp names the script's hash, so a new source list is installed on the next setup.
SOURCES_STAMP=.venv/.demo-sources-$(sha256sum scripts/install-demo-sources.sh | cut -c1-16)
if [ -x scripts/install-demo-sources.sh ] && [ ! -f "$SOURCES_STAMP" ]; then
  scripts/install-demo-sources.sh && mkdir -p .venv && rm -f .venv/.demo-sources* && touch "$SOURCES_STAMP"
fi

if [ -f "$STAMP" ]; then
  exit 0
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# pip (not uv/poetry): torch 2.14.1 / torchvision 0.29.1 come from the machine's local wheel folders.
.venv/bin/pip install --quiet --disable-pip-version-check -r "$LOCK"
.venv/bin/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
rm -f .venv/.lock-*
touch "$STAMP"
echo "setup: .venv ready ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
