#!/usr/bin/env bash
# The demo publication end to end, after scripts/train-demo-zoo.sh: evaluate the zoo on the TEST split once
# (scripts/evaluate_demo_zoo.py, resumable), then write the pages and tables from those run folders
# (`make demo-results`, which alone regenerates them byte for byte). Nothing is tuned here.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python scripts/evaluate_demo_zoo.py
make demo-results
