"""One helper of the demo scripts (tune_demo.py, evaluate_demo_zoo.py): run a command with one thread,
appending its output to a log, and stop the script on failure."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".venv" / "bin" / "rlbind-bench"


def run_logged(cmd: list[str], log: Path) -> None:
    # one thread per job: two jobs side by side use a 2-core machine better than one job with two threads
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.time()
    with open(log, "a") as fh:
        fh.write("$ " + " ".join(cmd) + "\n")
        fh.flush()
        rc = subprocess.call(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    print(f"[{time.strftime('%H:%M:%S')}] rc={rc} {time.time() - started:7.0f}s {log.stem}", flush=True)
    if rc:
        raise SystemExit(f"failed: {' '.join(cmd)} (log {log})")
