"""AutoAttack's cost sub-attack by sub-attack: what `run --plan` expects beside what the run spends.

    .venv/bin/python benchmarks/autoattack_stages.py [--model demo/fare-s0] [--dataset demo-digits-video]
        [--eps 1/255] [--n-samples 100] [--subset 25] [--append docs/benchmarks.md]

One process, one thread: the plan of `run --threats autoattack-linf` (the library call, so its per-stage call
groups are at hand), then the same evaluation for real with each sub-attack's `perturb` timed and the model
calls inside it counted (calls and rows, forward and forward+backward). Per sub-attack: the plan's expected calls,
rows and seconds (in the model, and outside it: Attack.stage_outside_seconds) against the measured calls, rows
and seconds. The plan's survivors come from a PGD-20, so a sub-attack after APGD-CE shows whether that share was
over-counted (more rows planned than run) or the time per call is off (rows match, seconds do not).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import _report  # benchmarks/_report.py: these scripts run as `python benchmarks/X.py`

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="demo/fare-s0")
    ap.add_argument("--dataset", default="demo-digits-video")
    ap.add_argument("--eps", default="1/255")
    ap.add_argument("--n-samples", type=int, default=100)
    ap.add_argument("--subset", type=int, default=25)
    ap.add_argument("--append", type=Path, default=None)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    import rlbind_bench
    from rlbind_bench.config import RunConfig, RunRequest
    from rlbind_bench.plan import plan_run
    from rlbind_bench.plan.cost import CallGroup
    from rlbind_bench.threats import autoattack as aa_module
    from rlbind_bench.threats.spec import parse_number

    eps = parse_number(args.eps, "--eps")
    options = {"split": "test", "n_samples": args.n_samples, "autoattack_subset": args.subset,
               "logit_scale": "model", "eps": [eps]}
    cfg = RunConfig(model=args.model, suite="clean", datasets=[args.dataset], threats=["autoattack-linf"], **options)
    plan = plan_run(RunRequest(config=cfg, out=Path("unused"), progress=False, command=["autoattack_stages.py"]))
    cell = next(c for c in plan.cells if c.cell.startswith("autoattack"))
    cost = plan.costs[cell.dataset]
    names = ["apgd-ce", "apgd-t", "fab-t", "square"]
    planned = {}
    for k, name in enumerate(names):
        pair: list[CallGroup] = cell.call_groups[2 * k:2 * k + 2]
        model_s = sum(g.calls * cost.call_seconds(g.backward, g.rows / g.calls) for g in pair if g.calls)
        planned[name] = (sum(g.calls for g in pair), sum(g.rows for g in pair), model_s,
                         sum(g.calls * g.outside_s for g in pair))

    measured = {name: [0, 0, 0.0] for name in names}  # calls, rows, seconds
    current = {"name": None}
    view_forward = aa_module.UnitBoxView.forward

    def counted(self, u):
        if current["name"]:
            measured[current["name"]][0] += 1
            measured[current["name"]][1] += len(u)
        return view_forward(self, u)

    aa_module.UnitBoxView.forward = counted
    wrap = aa_module.AutoAttackThreat._record_sub_attacks

    def record(aa, view, robust, y, broken_by):
        # around the project's own wrapper: its forward after each sub-attack is in the plan's stage budget too
        wrap(aa, view, robust, y, broken_by)
        for name in aa.attacks_to_run:
            obj = getattr(aa, aa_module.SUB_ATTACKS[name])
            inner = obj.perturb

            def timed(*a, _inner=inner, _name=name, **k):
                current["name"] = _name
                t0 = time.perf_counter()
                try:
                    return _inner(*a, **k)
                finally:
                    measured[_name][2] += time.perf_counter() - t0
                    current["name"] = None

            obj.perturb = timed

    aa_module.AutoAttackThreat._record_sub_attacks = staticmethod(record)
    t0 = time.perf_counter()
    result = rlbind_bench.evaluate(args.model, [args.dataset], threats=["autoattack-linf"], **options)
    seconds = time.perf_counter() - t0
    summary = result.summary
    robust = summary[summary["threat"].str.startswith("autoattack")]["accuracy"].iloc[0]
    n = int(summary[summary["threat"] == "clean"]["n"].iloc[0])

    rows = []
    for name in names:
        p_calls, p_rows, p_model, p_out = planned[name]
        m_calls, m_rows, m_s = measured[name]
        err = (p_model + p_out - m_s) / m_s if m_s else float("nan")
        rows.append(f"| {name} | {p_calls:.0f} | {p_rows:.0f} | {p_model:.1f} s | {p_out:.1f} s | {m_calls} | {m_rows} | "
                    f"{m_s:.1f} s | {err:+.0%} |")
    total_p = sum(p[2] + p[3] for p in planned.values())
    total_m = sum(m[2] for m in measured.values())
    rows.append(f"| **all** | | | | {total_p:.1f} s | | | {total_m:.1f} s | {(total_p - total_m) / total_m:+.0%} |")
    _report.emit("\n".join([
        f"## AutoAttack per sub-attack: plan against run ({time.strftime('%Y-%m-%d')}, commit {_report.commit()})",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, no GPU; torch {torch.__version__}, 1 thread. "
        f"`benchmarks/autoattack_stages.py`: {args.model}, {args.dataset} (test, {n} samples), "
        f"AutoAttack standard L-inf {args.eps} on the --autoattack-subset {args.subset} (batches of {cost.batch_size}: "
        f"subset rows {cell.subset_batch_rows}). Planned: expected model calls and rows, seconds in the model and "
        f"outside it; measured: the calls and rows inside each sub-attack's perturb, and its time. Robust accuracy "
        f"{robust:.2f}; the whole evaluation took {seconds:.0f} s (the plan's AutoAttack cell: "
        f"{cell.expected_s:.0f} s).",
        "",
        "| sub-attack | planned calls | planned rows | planned model | planned outside | calls | rows | time | "
        "error |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows]), args.append)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
