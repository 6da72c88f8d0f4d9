"""LanguageBind-size towers, one process per modality: build time, checkpoint size, and a run's wall time and
peak memory (1 sample, L-inf PGD 1 step at 1/255, probes off), plus the plan's FLOPs per pass.

    .venv/bin/python benchmarks/vit_l_towers.py [--modalities image,audio,...] [--append docs/benchmarks.md]

The same command as tests/test_vit_l_checkpoints.py's slow test (rlbind_bench/plan/measure.py); the demo data
must be prepared (`rlbind-bench data prepare demo`); depth uses real photos as depth maps.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import _report  # benchmarks/_report.py

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--modalities", default="image,audio,thermal,depth,video")
    ap.add_argument("--append", type=Path, default=None)
    args = ap.parse_args()

    import torch

    from rlbind_bench.encoders.checkpoint_factory import build_languagebind_checkpoint
    from rlbind_bench.plan.measure import run_measured, tower_run_argv

    rows = []
    for modality in args.modalities.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            t0 = time.perf_counter()
            ckpt = build_languagebind_checkpoint(work / "ckpt", modality, size="vit-l")
            build_s = time.perf_counter() - t0
            size_gb = sum(f.stat().st_size for f in ckpt.iterdir()) / 1e9
            plan_file = work / "plan.json"
            argv = tower_run_argv(modality, ckpt, work / "out", work)
            plan = run_measured([*argv, "--plan-for", "H100", "--plan-json", str(plan_file)])
            if plan.returncode != 0:
                print(plan.output, file=sys.stderr)
                return 1
            cost = next(iter(json.loads(plan_file.read_text())["costs"].values()))
            run = run_measured(argv)
            if run.returncode != 0:
                print(run.output, file=sys.stderr)
                return 1
            seconds_in_run = json.loads((work / "out" / "run.json").read_text())["seconds"]
        rows.append(f"| {modality} | {size_gb:.2f} GB | {build_s:.0f} s | {cost['flops_forward'] / 1e9:.0f} | "
                    f"{cost['flops_backward'] / 1e9:.0f} | {run.seconds:.0f} s | {seconds_in_run:.0f} s | "
                    f"{run.peak_rss_bytes / 2**30:.2f} GiB |")
        print(rows[-1], flush=True)
    text = "\n".join([
        f"## ViT-L/14 towers per modality ({time.strftime('%Y-%m-%d')}, commit {_report.commit()})",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, no GPU; torch {torch.__version__}. "
        "`checkpoint build --size vit-l` (LanguageBind's released tower settings, docs/vit-l-checkpoints.md), "
        "then one `rlbind-bench run` process per modality: 1 sample, L-inf PGD 1 step at 1/255, `--probe-samples 0`"
        " (`benchmarks/vit_l_towers.py`). GFLOP per sample counted by the plan (forward; forward+backward w.r.t. "
        "the input); wall = the whole process (start-up, model load, class text embeddings, the run); in run = "
        "run.json `seconds`; peak RSS of that process.",
        "",
        "| modality | checkpoint | build | GFLOP fwd | GFLOP fwd+bwd | wall | in run | peak RSS |",
        "|---|---|---|---|---|---|---|---|",
        *rows])
    _report.emit(text, args.append)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
