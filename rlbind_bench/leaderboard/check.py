"""Regression gate: compare a results folder with a baseline, cell by cell.

Cells are matched by (modality, dataset, threat, norm, eps, severity); model names may differ (a new
checkpoint against the published one). Per matched cell, with delta = results - baseline accuracy:

- paired mode (both sides have samples.parquet): samples are matched by sample_id, over those valid on
  both sides; ``regressed`` when the drop exceeds the tolerance (percentage points) *and* the exact McNemar
  test on the per-sample ``correct`` gives p <= alpha (alpha = 1: every drop beyond the tolerance). The
  table also shows the paired bootstrap 95% CI of delta.
- unpaired mode (a side has only a summary): ``regressed`` when the drop exceeds the tolerance and the two
  (1 - alpha) Wilson intervals do not overlap. Sample identity cannot be verified then; the report says so.

Statuses that fail the check (exit 1) besides ``regressed``: ``config-changed`` (the cell's attack and
evaluation protocol differ, from run.json: threat settings, templates, classes, seed, logit scale; model
weights are deliberately not part of it), ``samples-differ`` (other sample ids, or another n in unpaired
mode), ``missing`` (in the baseline, not in the results), ``no-valid-samples``. Such cells are never
compared silently. ``new`` (only in the results) and ``improved`` pass.
"""

from __future__ import annotations

import hashlib
import json
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from rlbind_bench.errors import UserError
from rlbind_bench.leaderboard.merge import eps_key, read_run_json
from rlbind_bench.leaderboard.metrics import cell_label
from rlbind_bench.results.stats import mcnemar_exact, paired_bootstrap_diff, wilson_interval, z_for_alpha
from rlbind_bench.results.store import read_table

MATCH_KEYS = ["modality", "dataset", "threat", "norm", "eps", "severity"]
OK, IMPROVED, NEW = "ok", "improved", "new"
REGRESSED, CONFIG_CHANGED, SAMPLES_DIFFER, MISSING, NO_VALID = (
    "regressed", "config-changed", "samples-differ", "missing", "no-valid-samples")
FAILING = (REGRESSED, CONFIG_CHANGED, SAMPLES_DIFFER, MISSING, NO_VALID)
# Fields of a dataset spec that change what a cell measures (paths and descriptions do not).
PROTOCOL_DATASET_FIELDS = ("layout", "split", "classes", "class_prompts", "templates", "clip_seconds")


# ------------------------------------------------------------------------------------------------ loading
@dataclass
class Side:
    role: str  # "results" or "baseline"
    path: Path
    summary: pd.DataFrame
    samples: pd.DataFrame | None
    run: dict | None
    model: str

    @property
    def protocols(self) -> dict[tuple[str, str], str]:
        return protocol_hashes(self.run) if self.run else {}


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def protocol_hashes(run: dict) -> dict[tuple[str, str], str]:
    """(dataset, config_hash) -> hash of what the cell measures, without the model (whose fingerprint is
    inside config_hash: a new checkpoint must still compare against the baseline's cells)."""
    datasets = {d.get("name"): d for d in run.get("datasets") or [] if isinstance(d, dict)}
    cfg = run.get("config") or {}
    out = {}
    for cell in run.get("cells") or []:
        if not isinstance(cell, dict):
            continue
        config = dict(cell.get("config") or {})
        threat = {k: v for k, v in (config.get("threat") or {}).items() if k != "description"}
        ds = datasets.get(cell.get("dataset"), {})
        proto = {"cell": {**config, "threat": threat}, "dataset": {k: ds.get(k) for k in PROTOCOL_DATASET_FIELDS},
                 "seed": cfg.get("seed"), "logit_scale": cfg.get("logit_scale")}
        out[(cell.get("dataset"), cell.get("config_hash"))] = _hash(proto)
    return out


def _summary_from_samples(samples: pd.DataFrame) -> pd.DataFrame:
    rows = []
    keys = ["model", *MATCH_KEYS, "config_hash"]
    for key, grp in samples.groupby(keys, dropna=False, sort=True):
        valid = grp[grp["valid"]]
        n, k = len(valid), int(valid["correct"].sum())
        lo, hi = wilson_interval(k, n)
        rows.append({**dict(zip(keys, key, strict=True)), "n": n, "n_correct": k,
                     "accuracy": k / n if n else math.nan, "ci_low": lo, "ci_high": hi, "checks_failed": ""})
    return pd.DataFrame(rows)


def _pick_model(frame: pd.DataFrame, model: str | None, role: str, path: Path) -> str:
    models = sorted(frame["model"].unique().tolist())
    if model is not None:
        if model not in models:
            raise UserError(f"{role} {path}: no model {model!r} (models: {', '.join(models)})")
        return model
    if len(models) != 1:
        hint = " (pick one with --baseline-model)" if role == "baseline" else ""
        raise UserError(f"{role} {path} holds {len(models)} models{hint}: {', '.join(models) or 'none'}")
    return models[0]


def load_side(path: Path, role: str, model: str | None = None) -> Side:
    """A results folder (summary.parquet and/or samples.parquet, run.json when present) or one Parquet file
    (a summary, a samples table or a leaderboard.parquet)."""
    path = Path(path)
    summary = samples = run = None
    if path.is_dir():
        if (path / "summary.parquet").is_file():
            summary = read_table(path / "summary.parquet")
        if (path / "samples.parquet").is_file():
            samples = read_table(path / "samples.parquet")
        if summary is None and samples is None:
            raise UserError(f"{role} {path}: neither summary.parquet nor samples.parquet in this folder")
        if (path / "run.json").is_file():
            run = read_run_json(path / "run.json")
    elif path.is_file():
        table = read_table(path)
        if "sample_id" in table.columns:
            samples = table
        elif "accuracy" in table.columns:
            summary = table
        else:
            raise UserError(f"{role} {path}: neither a summary nor a samples table")
    else:
        raise UserError(f"{role} {path} not found")
    if summary is None:
        summary = _summary_from_samples(samples)
    chosen = _pick_model(summary, model, role, path)
    summary = summary[summary["model"] == chosen].reset_index(drop=True)
    if samples is not None:
        samples = samples[samples["model"] == chosen].reset_index(drop=True)
    return Side(role, path, summary, samples, run, chosen)


# ---------------------------------------------------------------------------------------------- comparing
@dataclass
class CellCheck:
    modality: str
    dataset: str
    threat: str
    norm: str
    eps: float
    severity: int
    status: str
    mode: str = ""  # paired | unpaired | ""
    baseline_acc: float = math.nan
    results_acc: float = math.nan
    delta_pts: float = math.nan  # results - baseline, percentage points
    ci_pts: tuple[float, float] | None = None  # paired bootstrap 95% CI of delta
    p_value: float | None = None
    n_baseline: int | None = None
    n_results: int | None = None
    note: str = ""

    @property
    def label(self) -> str:
        return cell_label(self.threat, self.norm, self.eps, self.severity)

    @property
    def name(self) -> str:
        return f"{self.modality}/{self.dataset}/{self.label}"

    @property
    def failed(self) -> bool:
        return self.status in FAILING


@dataclass
class Report:
    results: Side
    baseline: Side
    tolerance_pts: float
    alpha: float
    cells: list[CellCheck] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[CellCheck]:
        return [c for c in self.cells if c.failed]

    @property
    def exit_code(self) -> int:
        return 1 if self.failures else 0

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self.cells:
            out[c.status] = out.get(c.status, 0) + 1
        return out


def _keyed(frame: pd.DataFrame) -> dict[tuple, pd.DataFrame]:
    frame = frame.assign(_eps=frame["eps"].map(eps_key))
    keys = ["modality", "dataset", "threat", "norm", "_eps", "severity"]
    return {tuple(k): g for k, g in frame.groupby(keys, sort=True, dropna=False)}


def _paired(cell: CellCheck, r: pd.DataFrame, b: pd.DataFrame, tol: float, alpha: float) -> None:
    cell.mode = "paired"
    for side, frame in (("results", r), ("baseline", b)):
        if frame["sample_id"].duplicated().any():
            raise UserError(f"{side}: duplicate sample ids in cell {cell.name}")
    r_ids, b_ids = set(r["sample_id"]), set(b["sample_id"])
    if r_ids != b_ids:
        cell.status = SAMPLES_DIFFER
        cell.note = (f"{len(r_ids - b_ids)} sample(s) only in results, {len(b_ids - r_ids)} only in baseline; "
                     "not compared")
        return
    joined = r[["sample_id", "correct", "valid"]].merge(b[["sample_id", "correct", "valid"]], on="sample_id",
                                                         suffixes=("_r", "_b"))
    both = joined[joined["valid_r"] & joined["valid_b"]]
    cell.n_results = cell.n_baseline = len(both)
    if len(both) == 0:
        cell.status = NO_VALID
        cell.note = "no sample valid on both sides"
        return
    if len(both) < len(joined):
        cell.note = f"{len(joined) - len(both)} sample(s) invalid (NaN/Inf) on a side, left out"
    rc, bc = both["correct_r"].to_numpy(bool), both["correct_b"].to_numpy(bool)
    cell.results_acc, cell.baseline_acc = float(rc.mean()), float(bc.mean())
    cell.delta_pts = (cell.results_acc - cell.baseline_acc) * 100
    boot = paired_bootstrap_diff(bc, rc, n_boot=2000, rng=np.random.default_rng(0))
    cell.ci_pts = (boot.low * 100, boot.high * 100)
    cell.p_value = mcnemar_exact(bc, rc).p_value
    significant = cell.p_value <= alpha
    cell.status = _verdict(cell.delta_pts, tol, significant)


def _unpaired(cell: CellCheck, r, b, tol: float, alpha: float) -> None:
    cell.mode = "unpaired"
    cell.n_results, cell.n_baseline = int(r.n), int(b.n)
    cell.results_acc, cell.baseline_acc = float(r.accuracy), float(b.accuracy)
    if cell.n_results == 0 or cell.n_baseline == 0 or math.isnan(cell.results_acc) or math.isnan(cell.baseline_acc):
        cell.status = NO_VALID
        cell.note = "no valid sample on a side"
        return
    if cell.n_results != cell.n_baseline:
        cell.status = SAMPLES_DIFFER
        cell.note = f"n {cell.n_results} vs baseline {cell.n_baseline}; not compared"
        return
    cell.delta_pts = (cell.results_acc - cell.baseline_acc) * 100
    z = z_for_alpha(alpha)
    r_lo, r_hi = wilson_interval(int(r.n_correct), int(r.n), z) if z > 0 else (cell.results_acc,) * 2
    b_lo, b_hi = wilson_interval(int(b.n_correct), int(b.n), z) if z > 0 else (cell.baseline_acc,) * 2
    significant = r_hi < b_lo if cell.delta_pts < 0 else r_lo > b_hi
    cell.status = _verdict(cell.delta_pts, tol, significant)


def _verdict(delta_pts: float, tol: float, significant: bool) -> str:
    if delta_pts < -tol and significant:
        return REGRESSED
    if delta_pts > tol and significant:
        return IMPROVED
    return OK


def compare(results: Side, baseline: Side, tolerance_pts: float = 1.0, alpha: float = 0.05) -> Report:
    if tolerance_pts < 0 or math.isnan(tolerance_pts):
        raise UserError("--tolerance-pts must be >= 0")
    if not 0 < alpha <= 1:
        raise UserError("--alpha must be in (0, 1]")
    report = Report(results, baseline, tolerance_pts, alpha)
    paired = results.samples is not None and baseline.samples is not None
    if not paired:
        lacking = [s.role for s in (results, baseline) if s.samples is None]
        report.notes.append(f"no per-sample table for {' and '.join(lacking)}: summary-level, unpaired comparison "
                            f"(drop beyond tolerance and non-overlapping {1 - alpha:.0%} Wilson intervals); "
                            "sample identity not verified")
    verify_config = results.run is not None and baseline.run is not None
    if not verify_config:
        lacking = [s.role for s in (results, baseline) if s.run is None]
        report.notes.append(f"no run.json for {' and '.join(lacking)}: attack configs not verified")
    r_sum, b_sum = _keyed(results.summary), _keyed(baseline.summary)
    r_smp = _keyed(results.samples) if paired else {}
    b_smp = _keyed(baseline.samples) if paired else {}
    r_proto, b_proto = results.protocols, baseline.protocols
    for key in sorted(set(r_sum) | set(b_sum)):
        modality, dataset, threat, norm, _, severity = key
        src = (r_sum.get(key) if key in r_sum else b_sum[key]).iloc[0]
        cell = CellCheck(modality, dataset, threat, norm, float(src.eps), int(severity), OK)
        report.cells.append(cell)
        if key not in r_sum:
            cell.status, cell.note = MISSING, "cell in the baseline but not in the results"
            cell.baseline_acc = float(b_sum[key]["accuracy"].iloc[0])
            continue
        if key not in b_sum:
            cell.status, cell.note = NEW, "no baseline for this cell"
            cell.results_acc = float(r_sum[key]["accuracy"].iloc[0])
            continue
        r_row, b_row = r_sum[key].iloc[0], b_sum[key].iloc[0]
        if paired and key in r_smp and key in b_smp:
            _paired(cell, r_smp[key], b_smp[key], tolerance_pts, alpha)
        else:
            _unpaired(cell, r_row, b_row, tolerance_pts, alpha)
        if verify_config:
            rp, bp = r_proto.get((dataset, r_row.config_hash)), b_proto.get((dataset, b_row.config_hash))
            if rp is None or bp is None:
                cell.note = "; ".join(x for x in (cell.note, "config not in run.json: not verified") if x)
            elif rp != bp:
                cell.status = CONFIG_CHANGED
                cell.note = f"attack/protocol config differs (protocol {rp} vs baseline {bp}); not compared"
        if str(r_row.get("checks_failed", "") or ""):
            cell.note = "; ".join(x for x in (cell.note, f"sanity checks failed: {r_row.checks_failed}") if x)
    return report


# ---------------------------------------------------------------------------------------------- rendering
def _pct(x: float) -> str:
    return "—" if x is None or math.isnan(x) else f"{x * 100:.1f}"


def _row(c: CellCheck) -> list[str]:
    delta = "—" if math.isnan(c.delta_pts) else f"{c.delta_pts:+.1f}"
    ci = "" if c.ci_pts is None else f"[{c.ci_pts[0]:+.1f}, {c.ci_pts[1]:+.1f}]"
    p = "" if c.p_value is None else f"{c.p_value:.3g}"
    n = "" if c.n_results is None else str(c.n_results)
    return [c.status, c.modality, c.dataset, c.label, _pct(c.baseline_acc), _pct(c.results_acc), delta, ci, p, n,
            c.mode, c.note]


COLUMNS = ["status", "modality", "dataset", "cell", "baseline %", "results %", "Δ pts", "Δ 95% CI", "p", "n",
           "mode", "note"]


def headline(report: Report) -> str:
    verdict = "FAIL" if report.failures else "PASS"
    counts = ", ".join(f"{v} {k}" for k, v in sorted(report.counts().items()))
    return (f"{verdict}: {len(report.cells)} cell(s) ({counts}); tolerance {report.tolerance_pts:g} pts, "
            f"alpha {report.alpha:g}; results model {report.results.model}, baseline model {report.baseline.model}")


def rich_table(report: Report):
    from rich.markup import escape
    from rich.table import Table

    colours = {REGRESSED: "red", CONFIG_CHANGED: "magenta", SAMPLES_DIFFER: "magenta", MISSING: "magenta",
               NO_VALID: "magenta", IMPROVED: "green", NEW: "cyan", OK: "default"}
    table = Table(title="rlbind-bench check (accuracy %, results vs baseline)")
    for col in COLUMNS:
        table.add_column(col, justify="right" if col in ("baseline %", "results %", "Δ pts", "p", "n") else "left")
    for c in report.cells:
        cells = [escape(x) for x in _row(c)]
        cells[0] = f"[{colours.get(c.status, 'default')}]{cells[0]}[/]"
        table.add_row(*cells)
    return table


def markdown(report: Report) -> str:
    from rlbind_bench.leaderboard.render import md_escape

    lines = [f"## rlbind-bench check: {'❌' if report.failures else '✅'} {md_escape(headline(report))}", ""]
    lines += [f"- results: {md_escape(report.results.path)}", f"- baseline: {md_escape(report.baseline.path)}"]
    lines += [f"- note: {md_escape(n)}" for n in report.notes]
    lines += ["", "| " + " | ".join(md_escape(c) for c in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    order = sorted(report.cells, key=lambda c: (not c.failed, c.name))  # failures first
    # Columns 4-9 are formatted numbers; the others may carry results' strings (dataset, threat, notes).
    lines += ["| " + " | ".join(x if 4 <= i <= 9 else md_escape(x) for i, x in enumerate(_row(c))) + " |"
              for c in order]
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
