"""`rlbind-bench leaderboard` (merge result folders into a published folder) and `rlbind-bench check` (the
regression gate of rlbind_bench.gate)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from rlbind_bench.cli.console import EXIT_OK, console
from rlbind_bench.errors import UserError
from rlbind_bench.files import write_bytes_atomic


# ---------------------------------------------------------------------------------------- leaderboard
def add_leaderboard(sub) -> None:
    p = sub.add_parser("leaderboard", help="merge result folders into Markdown, JSON, HTML and plots")
    p.add_argument("results", nargs="+", type=Path, metavar="RESULTS_DIR", help="results folders of `run`")
    p.add_argument("--out", type=Path, required=True, help="leaderboard folder (created; files replaced)")
    p.add_argument("--reference", default=None, metavar="MODEL",
                   help="model the others are compared to (Δ columns, mCE)")
    p.add_argument("--allow-conflicts", action="store_true",
                   help="keep the newest run when a cell's config differs across runs, and flag it (default: refuse)")
    p.set_defaults(func=cmd_leaderboard)


def cmd_leaderboard(args) -> int:
    from rich.markup import escape

    from rlbind_bench.leaderboard.build import write_leaderboard
    from rlbind_bench.leaderboard.merge import load_and_merge
    from rlbind_bench.leaderboard.retrieval import split_folders, write_retrieval

    args.results, retrieval = split_folders(args.results)
    if retrieval:  # `retrieve` folders: their own page, retrieval.md
        console().print(f"retrieval: {escape(str(write_retrieval(retrieval, args.out)))}")
    if not args.results:
        return EXIT_OK
    merged = load_and_merge(args.results, allow_conflicts=args.allow_conflicts)
    pages = {"Retrieval: R@K clean and attacked": "retrieval.md"} if retrieval else None
    written = write_leaderboard(merged, args.out, reference=args.reference, pages=pages)
    term = console()
    for c in merged.conflicts:
        term.print(f"[yellow]config conflict (newest kept, flagged):[/] {escape(c.describe())}")
    term.print(f"leaderboard: {len(merged.models)} model(s), {len(merged.modalities)} modality(ies), "
               f"{len(written.files)} file(s) under {escape(str(args.out))} "
               f"(open {escape(str(args.out / 'index.html'))})")
    return EXIT_OK


# ---------------------------------------------------------------------------------------------- check
def _number_in(what: str, accepts) -> Callable[[str], float]:
    """An argparse type: a float that `accepts`, else one line naming what was expected."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not accepts(value):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse


_tolerance = _number_in("a number of percentage points >= 0", lambda v: v >= 0)
_alpha = _number_in("a number in (0, 1]", lambda v: 0 < v <= 1)


def add_check(sub) -> None:
    p = sub.add_parser("check", help="regression gate: compare results with a baseline (exit 1 on regression)")
    p.add_argument("--results", type=Path, required=True, metavar="DIR", help="results folder of `run`")
    p.add_argument("--baseline", type=Path, required=True, metavar="DIR_OR_FILE",
                   help="baseline results folder, or its summary.parquet / samples.parquet, or a leaderboard.parquet")
    p.add_argument("--baseline-model", default=None, metavar="MODEL", help="when the baseline holds several models")
    p.add_argument("--tolerance-pts", type=_tolerance, default=1.0, metavar="X",
                   help="allowed accuracy drop in percentage points (default 1.0)")
    p.add_argument("--alpha", type=_alpha, default=0.05, metavar="A",
                   help="significance level over all compared cells (exact McNemar per cell when paired, "
                        "adjusted by --correction); 1: any drop beyond the tolerance counts (default 0.05)")
    p.add_argument("--correction", choices=["holm", "bh", "none"], default="holm",
                   help="multiple-comparison correction over the compared cells: holm (default; the chance of "
                        "any false regression <= alpha), bh (Benjamini-Hochberg; expected share of false ones "
                        "among the flagged <= alpha) or none (each cell at alpha on its own)")
    p.add_argument("--junit", type=Path, default=None, metavar="PATH",
                   help="JUnit XML report (default: RESULTS/check-junit.xml)")
    p.set_defaults(func=cmd_check)


def cmd_check(args) -> int:
    from rich.markup import escape

    from rlbind_bench.gate.compare import compare, load_side
    from rlbind_bench.gate.report import headline, junit_xml, markdown, rich_table

    if not args.results.is_dir():
        raise UserError(f"results folder {args.results} not found")
    results = load_side(args.results, "results")
    baseline = load_side(args.baseline, "baseline", args.baseline_model)
    report = compare(results, baseline, args.tolerance_pts, args.alpha, args.correction)
    term = console()
    term.print(rich_table(report))
    for note in report.notes:
        term.print(f"[yellow]note:[/] {escape(note)}")
    term.print(escape(headline(report)))
    junit = args.junit or args.results / "check-junit.xml"
    try:
        write_bytes_atomic(junit, junit_xml(report))
    except OSError as exc:
        raise UserError(f"cannot write JUnit report {junit} ({exc.strerror or exc})") from exc
    summary_file = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary_file:
        try:
            with open(summary_file, "a", encoding="utf-8") as fh:  # GitHub appends the steps' summaries
                fh.write(markdown(report))
        except OSError as exc:
            raise UserError(f"cannot write $GITHUB_STEP_SUMMARY {summary_file} ({exc.strerror or exc})") from exc
    term.print(f"JUnit: {escape(str(junit))}")
    if report.failures:
        names = "; ".join(f"{c.status}: {c.name}" for c in report.failures)
        print(f"rlbind-bench check: FAIL ({len(report.failures)} cell(s)): {names}", file=sys.stderr)
    return report.exit_code
