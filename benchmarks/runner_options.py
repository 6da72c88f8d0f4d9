"""What each speed option of `rlbind-bench run` does to one run here, and to its rows.

    .venv/bin/python benchmarks/runner_options.py [--model demo/rlbind-s0] [--suite quick] [--append docs/benchmarks.md]

The same command, each variant in its own process on its own fresh user cache and torch.compile cache (so no
variant reads another's corrupted inputs, probes, text embeddings or compiled kernels): the baseline, `--workers 1` (decoding and corrupting in a worker,
overlapping the model), `--precision bf16`, `--compile`, and the baseline again (the spread of two identical runs
is the noise the others are read against). Per variant: the whole process (wall) and run.json `seconds` (in run),
and its rows against the baseline's: `--workers` must give identical rows (it is not in run_id); bf16 and
compile change the last bits, so the table gives the share of rows whose `correct` agrees and the largest margin
difference. These are CPU figures: on a GPU the options exist for (workers feeding the device, bf16 tensor cores,
compiled kernels), they need `benchmarks/device.sh` or a user's runner.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from pathlib import Path

import _report  # benchmarks/_report.py: these scripts run as `python benchmarks/X.py`

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VARIANTS = {
    "baseline": [],
    "--workers 1": ["--workers", "1"],
    "--precision bf16": ["--precision", "bf16"],
    "--compile": ["--compile"],
    "baseline again": [],
}
KEY = ["dataset", "sample_id", "threat", "eps", "severity"]


def compare(base, other) -> str:
    """How `other`'s rows agree with `base`'s: identical, or the share of equal `correct` and the largest margin
    difference."""
    import numpy as np

    merged = base.merge(other, on=KEY, suffixes=("", "_o"), validate="one_to_one")
    if len(merged) != len(base) or len(merged) != len(other):
        return f"rows differ in number ({len(base)} vs {len(other)})"
    cols = ["pred", "correct", "margin", "perturbation_norm"]
    if all(np.array_equal(merged[c].to_numpy(), merged[f"{c}_o"].to_numpy(), equal_nan=c in ("margin",
                                                                                                "perturbation_norm"))
           for c in cols):
        return "identical"
    agree = float((merged["correct"] == merged["correct_o"]).mean())
    margin = float(np.nanmax(np.abs(merged["margin"] - merged["margin_o"])))
    return f"correct agrees on {agree:.2%} of {len(merged)} rows; max margin difference {margin:.3g}"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="demo/rlbind-s0")
    ap.add_argument("--suite", default="quick")
    ap.add_argument("--append", type=Path, default=None)
    args = ap.parse_args()

    import json

    import pandas as pd
    import torch

    from rlbind_bench.plan.measure import run_measured

    rows, samples = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, extra in VARIANTS.items():
            work = Path(tmp) / name.replace(" ", "_").strip("-")
            out = work / "out"
            # torch.compile keeps its kernels in a cache of its own: a fresh one, so --compile pays what a first
            # compiled run pays (a warm one made it 6x cheaper here)
            env = {**os.environ, "RLBIND_CACHE_DIR": str(work / "cache"), "TORCHINDUCTOR_CACHE_DIR": str(work / "inductor")}
            run = run_measured(["run", "--model", args.model, "--suite", args.suite, "--no-progress", "--out",
                                str(out), *extra], env=env)
            if run.returncode != 0:
                rows.append(f"| {name} | failed: {run.output.strip().splitlines()[-1][:200]} | | | |")
                print(rows[-1], flush=True)
                continue
            samples[name] = pd.read_parquet(out / "samples.parquet")
            in_run = json.loads((out / "run.json").read_text())["seconds"]
            rows.append(f"| {name} | {run.seconds:.1f} s | {in_run:.1f} s | {run.peak_rss_bytes / 2**30:.2f} GiB | "
                        f"{compare(samples['baseline'], samples[name]) if name != 'baseline' else '-'} |")
            print(rows[-1], flush=True)
    _report.emit("\n".join([
        f"## Runner options on CPU ({pd.Timestamp.now(tz='UTC'):%Y-%m-%d %H:%M} UTC, commit {_report.commit()})",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, no GPU; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads. `benchmarks/runner_options.py`: `run --model {args.model} --suite "
        f"{args.suite}`, each variant its own process on a fresh user cache and torch.compile cache; rows against the "
        "baseline's.",
        "",
        "| variant | wall | in run | peak RSS | rows against the baseline |",
        "|---|---|---|---|---|",
        *rows]), args.append)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
