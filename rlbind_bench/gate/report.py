"""The gate's report of a comparison: a rich table for the terminal, Markdown for $GITHUB_STEP_SUMMARY and
JUnit XML for CI. Strings from results (datasets, threats, notes) are escaped for each target."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

from rich.markup import escape
from rich.table import Table

from rlbind_bench.gate.compare import (
    CONFIG_CHANGED,
    IMPROVED,
    MISSING,
    NEW,
    NO_VALID,
    OK,
    REGRESSED,
    SAMPLES_DIFFER,
    CellCheck,
    Report,
)
from rlbind_bench.leaderboard.render import md_escape


def _pct(x: float) -> str:
    return "—" if x is None or math.isnan(x) else f"{x * 100:.1f}"


def _row(c: CellCheck) -> list[str]:
    delta = "—" if math.isnan(c.delta_pts) else f"{c.delta_pts:+.1f}"
    ci = "" if c.ci_pts is None else f"[{c.ci_pts[0]:+.1f}, {c.ci_pts[1]:+.1f}]"
    p = "" if c.p_value is None else f"{c.p_value:.3g}"
    p_adj = "" if c.p_adjusted is None else f"{c.p_adjusted:.3g}"
    n = "" if c.n_results is None else str(c.n_results)
    return [c.status, c.modality, c.dataset, c.label, _pct(c.baseline_acc), _pct(c.results_acc), delta, ci, p, p_adj,
            n, c.mode, c.note]


COLUMNS = ["status", "modality", "dataset", "cell", "baseline %", "results %", "Δ pts", "Δ 95% CI", "p", "p adj",
           "n", "mode", "note"]
NUMERIC = ("baseline %", "results %", "Δ pts", "p", "p adj", "n")
FORMATTED = (*NUMERIC, "Δ 95% CI")  # written here from numbers, nothing from the results to escape
CORRECTION_NAMES = {"holm": "Holm", "bh": "Benjamini-Hochberg"}


def significance(report: Report) -> str:
    """What alpha means in this report, e.g. "alpha 0.05, Holm-adjusted over 12 cells"."""
    if report.correction == "none":
        return f"alpha {report.alpha:g} per cell, no multiple-comparison correction"
    return f"alpha {report.alpha:g}, {CORRECTION_NAMES[report.correction]}-adjusted over {report.n_tested} cell(s)"


def headline(report: Report) -> str:
    verdict = "FAIL" if report.failures else "PASS"
    counts = ", ".join(f"{v} {k}" for k, v in sorted(report.counts().items()))
    return (f"{verdict}: {len(report.cells)} cell(s) ({counts}); tolerance {report.tolerance_pts:g} pts, "
            f"{significance(report)}; results model {report.results.model}, "
            f"baseline model {report.baseline.model}")


def rich_table(report: Report) -> Table:
    colours = {REGRESSED: "red", CONFIG_CHANGED: "magenta", SAMPLES_DIFFER: "magenta", MISSING: "magenta",
               NO_VALID: "magenta", IMPROVED: "green", NEW: "cyan", OK: "default"}
    table = Table(title="rlbind-bench check (accuracy %, results vs baseline)")
    for col in COLUMNS:
        table.add_column(col, justify="right" if col in NUMERIC else "left")
    for c in report.cells:
        cells = [escape(x) for x in _row(c)]
        cells[0] = f"[{colours.get(c.status, 'default')}]{cells[0]}[/]"
        table.add_row(*cells)
    return table


def markdown(report: Report) -> str:
    lines = [f"## rlbind-bench check: {'❌' if report.failures else '✅'} {md_escape(headline(report))}", ""]
    lines += [f"- results: {md_escape(report.results.path)}", f"- baseline: {md_escape(report.baseline.path)}"]
    lines += [f"- note: {md_escape(n)}" for n in report.notes]
    lines += ["", "| " + " | ".join(md_escape(c) for c in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    order = sorted(report.cells, key=lambda c: (not c.failed, c.name))  # failures first
    # The other columns may carry results' strings (dataset, threat, notes).
    lines += ["| " + " | ".join(x if col in FORMATTED else md_escape(x) for col, x in zip(COLUMNS, _row(c), strict=True))
              + " |" for c in order]
    return "\n".join(lines) + "\n"


def _xml_text(text) -> str:
    """Strip characters XML 1.0 cannot hold (control characters from untrusted names)."""
    return "".join(ch for ch in str(text) if ch in "\t\n\r" or ord(ch) >= 0x20)


def junit_xml(report: Report) -> bytes:
    suites = ET.Element("testsuites", name="rlbind-bench check")
    suite = ET.SubElement(suites, "testsuite", name="rlbind-bench check", tests=str(len(report.cells)),
                          failures=str(len(report.failures)), errors="0",
                          skipped=str(sum(c.status == NEW for c in report.cells)))
    props = ET.SubElement(suite, "properties")
    for name, value in (("results", report.results.path), ("baseline", report.baseline.path),
                        ("tolerance_pts", report.tolerance_pts), ("alpha", report.alpha),
                        ("correction", report.correction), ("corrected_cells", report.n_tested),
                        ("results_model", report.results.model), ("baseline_model", report.baseline.model),
                        *(("note", n) for n in report.notes)):
        ET.SubElement(props, "property", name=name, value=_xml_text(value))
    for c in report.cells:
        case = ET.SubElement(suite, "testcase", classname=_xml_text(f"rlbind-bench.{c.modality}.{c.dataset}"),
                             name=_xml_text(c.label))
        detail = _xml_text("; ".join(f"{k}: {v}" for k, v in zip(COLUMNS, _row(c), strict=True) if v))
        if c.failed:
            failure = ET.SubElement(case, "failure", type=c.status, message=_xml_text(f"{c.status}: {c.name}"))
            failure.text = detail
        elif c.status == NEW:
            ET.SubElement(case, "skipped", message="no baseline for this cell")
        else:
            ET.SubElement(case, "system-out").text = detail
    ET.indent(suites)
    return ET.tostring(suites, encoding="utf-8", xml_declaration=True)
