"""`rlbind-bench run --plan`: the cost plan as a table (rlbind_bench/plan computes it)."""

from __future__ import annotations

from rlbind_bench.cli.console import console
from rlbind_bench.errors import UserError


def _seconds(s: float | None) -> str:
    if s is None:
        return "-"
    if s < 120:
        return f"{s:.3g} s"
    return f"{s / 60:.3g} min" if s < 7200 else f"{s / 3600:.3g} h"


def show_plan(req, target: str | None = None, samples: int | None = None) -> dict:
    """Compute, print and return (as JSON data) the cost plan of one run request."""
    from rich.markup import escape
    from rich.table import Table

    from rlbind_bench.plan import plan_run

    if samples is not None and samples < 1:
        raise UserError(f"--plan-samples must be >= 1, got {samples}")
    plan = plan_run(req, target=target, samples=samples)
    table = Table(title=f"cost plan: {escape(plan.model)} on {escape(plan.device)} ({plan.precision})")
    for col in ("dataset", "cell", "samples", "fwd", "fwd+bwd", "expected fwd", "expected fwd+bwd", "GFLOP",
                "worst", "expected"):
        table.add_column(col, justify="left" if col in ("dataset", "cell") else "right")
    for c in plan.cells:
        b = c.budget
        src = " (src)" if b.source_forward or b.source_backward else ""
        table.add_row(escape(c.dataset), escape(c.cell), str(c.samples), f"{b.forward + b.source_forward}{src}",
                      f"{b.backward + b.source_backward}{src}", f"{c.expected[0]:.3g}", f"{c.expected[1]:.3g}"
                      + ("" if c.expected_method != "scaled" else " *"), f"{c.flops / 1e9:.3g}",
                      _seconds(c.worst_s), _seconds(c.expected_s))
    out = console()
    out.print(table)
    for name, cost in plan.costs.items():
        out.print(f"{escape(name)}: {cost.flops_forward / 1e9:.3g} GFLOP forward, {cost.flops_backward / 1e9:.3g} "
                  f"forward+backward per sample; {cost.seconds_forward * 1e3:.3g} / {cost.seconds_backward * 1e3:.3g}"
                  f" ms per batch of {cost.batch_size}; clean accuracy on the probe "
                  f"{plan.clean_accuracy[name]:.2f}")
    t = plan.totals
    peak = f"{plan.peak_flops / 1e12:.3g} TFLOP/s {plan.peak_dtype} ({plan.peak_source})" if plan.peak_flops else \
        f"unknown peak ({escape(plan.peak_source)})"
    out.print(f"passes per sample at most (fwd, fwd+bwd); * expected = at most x clean accuracy (not probed). "
              f"Peak {peak}.")
    if plan.target:
        out.print(f"priced at the {escape(plan.target)} datasheet peak, not measured: worst case = compute bound; "
                  f"expected = expected passes at the bound (divide by the measured fraction of peak, "
                  f"docs/benchmarks.md)")
    out.print(f"totals: {t['flops'] / 1e12:.3g} TFLOP; compute bound {_seconds(t['compute_bound_s'])}, "
              f"worst case {_seconds(t['worst_case_s'])}, expected {_seconds(t['expected_s'])}")
    return plan.to_dict()
