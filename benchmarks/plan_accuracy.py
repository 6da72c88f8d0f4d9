"""How close `run --plan`'s expected time comes to the measured run: the plan, then the same command for real,
each in its own process, on a fresh user cache per case (so neither side finds the other's corruptions or
probes; the plan's text embeddings are reused by the run, as they would be for a user).

    .venv/bin/python benchmarks/plan_accuracy.py [--cases quick,full-reduced] [--append docs/benchmarks.md]
    .venv/bin/python benchmarks/plan_accuracy.py --against RUN_DIR [RUN_DIR ...] [--append docs/benchmarks.md]

`--against` plans the command stored in each finished run folder's run.json and sets the plan beside the
evaluation time that run recorded, without running it again: for long runs (the demo grid's corruption and
AutoAttack groups) that no benchmark can afford to repeat. Only "in run" is known there, so the plan's own
process-start and start-up rows are left out of its expected time.

Error = (plan expected - measured) / measured, against the run's wall time as a user sees it (the whole
process) and against run.json `seconds` (the evaluation alone, after start-up and model load).
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

CASES = {
    "quick": ("quick suite, demo/rlbind-s0, 4 modalities (the README's demo command)",
              ["--model", "demo/rlbind-s0", "--suite", "quick"]),
    "full-reduced": ("full suite, demo/rlbind-s0, 4 modalities, 3 samples per dataset",
                     ["--model", "demo/rlbind-s0", "--suite", "full", "--n-samples", "3"]),
    "pgd-image": ("L-inf PGD-10 at 1, 2, 4/255 on demo/rlbind-s0's image tower, 64 samples",
                  ["--model", "demo/rlbind-s0", "--modalities", "image", "--threats", "linf-pgd", "--n-samples", "64"]),
    # AutoAttack as the demo grid runs it (scripts/evaluate_demo_zoo.py): the subset falls in several batches
    "aa-audio": ("AutoAttack standard 1/255 on demo/fare-s0, spoken digits (test, 50 samples, subset 25)",
                 ["--model", "demo/fare-s0", "--datasets", "demo-digits-audio", "--split", "test", "--logit-scale",
                  "model", "--threats", "autoattack-linf", "--eps", "1/255", "--autoattack-subset", "25"]),
    "aa-video": ("AutoAttack standard 1/255 on demo/fare-s0, digit videos (test, 100 samples, subset 25)",
                 ["--model", "demo/fare-s0", "--datasets", "demo-digits-video", "--split", "test", "--n-samples",
                  "100", "--logit-scale", "model", "--threats", "autoattack-linf", "--eps", "1/255", "--autoattack-subset", "25"]),
}


# the plan's fixed rows that run.json `seconds` does not include (they come before the run's clock starts)
BEFORE_THE_RUN = ("process start", "start-up")


def case_env(tmp: str, threads: int | None) -> dict:
    """A fresh user cache in `tmp`, and the thread count both processes get."""
    return {**os.environ, "RLBIND_CACHE_DIR": str(Path(tmp) / "cache"),
            **({"OMP_NUM_THREADS": str(threads)} if threads else {})}


def against(folders: list[Path], threads: int | None) -> list[str]:
    """The plan of each stored command, beside the run's own `seconds`."""
    from rlbind_bench.plan.measure import run_measured

    rows = []
    for folder in folders:
        stored = json.loads((folder / "run.json").read_text())
        argv = list(stored["command"][1:])  # the first item is the console script that ran it
        if "--out" in argv:
            del argv[argv.index("--out"):argv.index("--out") + 2]
        with tempfile.TemporaryDirectory() as tmp:
            env = case_env(tmp, threads)
            plan_file = Path(tmp) / "plan.json"
            plan = run_measured([*argv, "--out", str(Path(tmp) / "out"), "--plan-json", str(plan_file)], env=env)
            if plan.returncode != 0:
                raise SystemExit(f"plan of {folder} failed:\n{plan.output}")
            planned = json.loads(plan_file.read_text())
        before = sum(c["expected_s"] for c in planned["cells"] if c["cell"].startswith(BEFORE_THE_RUN))
        expected = planned["totals"]["expected_s"] - before
        in_run = float(stored["seconds"])
        rows.append(f"| {folder} | {plan.seconds:.0f} s | {planned['totals']['compute_bound_s']:.0f} s | "
                    f"{planned['totals']['worst_case_s']:.0f} s | {expected:.0f} s | {in_run:.0f} s | "
                    f"{(expected - in_run) / in_run:+.0%} | {stored.get('device', '')} |")
        print(rows[-1], flush=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--against", nargs="+", type=Path, default=None, metavar="RUN_DIR")
    ap.add_argument("--append", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=None,
                    help="OMP_NUM_THREADS for both processes (1 keeps a shared machine's other load from "
                         "stalling torch's thread hand-offs)")
    args = ap.parse_args()

    import torch

    if args.against:
        rows = against(args.against, args.threads)
        _report.emit("\n".join([
            f"## Plan against committed runs ({time.strftime('%Y-%m-%d')}, commit {_report.commit()})",
            f"Machine: {platform.machine()}, {os.cpu_count()} cores, no GPU; torch {torch.__version__}, "
            f"{args.threads or torch.get_num_threads()} thread(s) for the plan. `benchmarks/plan_accuracy.py "
            "--against`: the command stored in each run folder's run.json, planned now on a fresh user cache; "
            "expected leaves out the plan's process-start and start-up rows; in run = the run's own run.json "
            "`seconds` (the device column says how it ran; the demo grid ran two such runs at a time).",
            "",
            "| run folder | plan took | bound | worst case | expected (in run) | in run | error | run's device |",
            "|---|---|---|---|---|---|---|---|",
            *rows]), args.append)
        return 0

    from rlbind_bench.plan.measure import run_measured

    rows = []
    for name in args.cases.split(","):
        label, argv = CASES[name]
        with tempfile.TemporaryDirectory() as tmp:
            env = case_env(tmp, args.threads)
            plan_file = Path(tmp) / "plan.json"
            common = ["run", *argv, "--no-progress", "--out", str(Path(tmp) / "out")]
            plan = run_measured([*common, "--plan-json", str(plan_file)], env=env)
            if plan.returncode != 0:
                print(plan.output, file=sys.stderr)
                return 1
            totals = json.loads(plan_file.read_text())["totals"]
            run = run_measured(common, env=env)
            if run.returncode != 0:
                print(run.output, file=sys.stderr)
                return 1
            in_run = json.loads((Path(tmp) / "out" / "run.json").read_text())["seconds"]
        expected = totals["expected_s"]
        rows.append(f"| {label} | {plan.seconds:.0f} s | {totals['compute_bound_s']:.0f} s | "
                    f"{totals['worst_case_s']:.0f} s | {expected:.0f} s | {run.seconds:.0f} s | "
                    f"{(expected - run.seconds) / run.seconds:+.0%} | {in_run:.0f} s | "
                    f"{(expected - in_run) / in_run:+.0%} |")
        print(rows[-1], flush=True)
    text = "\n".join([
        f"## Plan against measured runs ({time.strftime('%Y-%m-%d')}, commit {_report.commit()})",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, no GPU; torch {torch.__version__}, "
        f"{args.threads or torch.get_num_threads()} thread(s) per process. "
        "`benchmarks/plan_accuracy.py`: `run ... --plan-json`, then the same command, each its own process, a "
        "fresh user cache per case. Bound, worst case and expected are the plan's totals; wall = the run's whole "
        "process; in run = run.json `seconds`.",
        "",
        "| case | plan took | bound | worst case | expected | run wall | error vs wall | in run | error vs in run |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows])
    _report.emit(text, args.append)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
