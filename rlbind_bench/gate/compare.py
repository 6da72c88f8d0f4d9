"""Regression gate: compare a results folder with a baseline, cell by cell.

Cells are matched by (modality, dataset, threat, norm, eps, severity); model names may differ (a new
checkpoint against the published one). Per matched cell, with delta = results - baseline accuracy:

- paired mode (both sides have samples.parquet): samples are matched by sample_id, over those valid on
  both sides; the cell's p-value is the exact McNemar test on the per-sample ``correct``. The table also
  shows the paired bootstrap 95% CI of delta.
- unpaired mode (a side has only a summary): the cell's p-value is the level at which the two Wilson
  intervals touch (results.stats.wilson_overlap_p), so "p <= alpha" is "the (1 - alpha) intervals do not
  overlap". Sample identity cannot be verified then; the report says so.

``regressed`` when the drop exceeds the tolerance (percentage points) *and* the cell's p-value, adjusted
over every compared cell, is <= alpha (alpha = 1: every drop beyond the tolerance). With ~100 cells a gate
testing each at 0.05 on its own would raise ~5 false regressions on an unchanged model; the adjustment
(``correction``: Holm by default, which bounds the chance of *any* false regression by alpha; ``bh``,
Benjamini-Hochberg, which bounds the expected share of false ones among those flagged; ``none``) makes alpha
a property of the whole check. The family is the cells that got a p-value and were not set aside as
incomparable below.

Statuses that fail the check (exit 1) besides ``regressed``: ``config-changed`` (the cell's attack and
evaluation protocol differ, from run.json: threat settings, templates, classes, seed, logit scale; model
weights are deliberately not part of it), ``samples-differ`` (other sample ids, or another n in unpaired
mode), ``missing`` (in the baseline, not in the results), ``no-valid-samples``. Such cells are never
compared silently. ``new`` (only in the results) and ``improved`` pass.

A baseline written with an older results schema is refused before anything is read or compared: its
columns may mean something else, so neither a regression nor a pass would be honest. Rendering the
report is rlbind_bench.gate.report's job.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from rlbind_bench.errors import UserError
from rlbind_bench.hashing import config_hash
from rlbind_bench.leaderboard.merge import eps_key, read_run_json
from rlbind_bench.leaderboard.metrics import cell_label
from rlbind_bench.results.schema import SCHEMA_VERSION
from rlbind_bench.results.stats import (
    CORRECTIONS,
    adjust_pvalues,
    mcnemar_exact,
    paired_bootstrap_diff,
    wilson_interval,
    wilson_overlap_p,
)
from rlbind_bench.results.store import read_table, table_schema_version

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
                 "seed": cfg.get("seed"),
                 # The number the dataset ran at (`--logit-scale model` resolves per dataset); older runs: the setting.
                 "logit_scale": (run.get("logit_scales") or {}).get(cell.get("dataset"), cfg.get("logit_scale"))}
        out[(cell.get("dataset"), cell.get("config_hash"))] = config_hash(proto)
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


def _is_older_schema(version: str) -> bool:
    """'' (written before tables carried a version) or a lower number than this rlbind-bench writes."""
    return not version or (version.isdigit() and int(version) < int(SCHEMA_VERSION))


def _read(file: Path, role: str, ref: Path) -> pd.DataFrame:
    # Checked before read_table, which refuses any other version with a message about the file, not about
    # what to do: a baseline from an older schema is stale, and only rerunning it makes it comparable.
    if role == "baseline":
        version = table_schema_version(file)
        if _is_older_schema(version):
            raise UserError(f"baseline {ref} is from results schema {version or '(none)'}; this rlbind-bench "
                            f"writes schema {SCHEMA_VERSION}: rerun the baseline")
    return read_table(file)


def load_side(path: Path, role: str, model: str | None = None) -> Side:
    """A results folder (summary.parquet and/or samples.parquet, run.json when present) or one Parquet file
    (a summary, a samples table or a leaderboard.parquet)."""
    path = Path(path)
    summary = samples = run = None
    if path.is_dir():
        if (path / "summary.parquet").is_file():
            summary = _read(path / "summary.parquet", role, path)
        if (path / "samples.parquet").is_file():
            samples = _read(path / "samples.parquet", role, path)
        if summary is None and samples is None:
            raise UserError(f"{role} {path}: neither summary.parquet nor samples.parquet in this folder")
        if (path / "run.json").is_file():
            run = read_run_json(path / "run.json")
    elif path.is_file():
        table = _read(path, role, path)
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
    p_value: float | None = None  # the cell's own test
    p_adjusted: float | None = None  # after the report's correction over all compared cells
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
    correction: str = "holm"
    cells: list[CellCheck] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[CellCheck]:
        return [c for c in self.cells if c.failed]

    @property
    def exit_code(self) -> int:
        return 1 if self.failures else 0

    @property
    def n_tested(self) -> int:
        """Cells in the correction's family (those with an adjusted p-value)."""
        return sum(c.p_adjusted is not None for c in self.cells)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self.cells:
            out[c.status] = out.get(c.status, 0) + 1
        return out


def _keyed(frame: pd.DataFrame) -> dict[tuple, pd.DataFrame]:
    frame = frame.assign(_eps=frame["eps"].map(eps_key))
    keys = ["modality", "dataset", "threat", "norm", "_eps", "severity"]
    return {tuple(k): g for k, g in frame.groupby(keys, sort=True, dropna=False)}


def _paired(cell: CellCheck, r: pd.DataFrame, b: pd.DataFrame) -> None:
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


def _unpaired(cell: CellCheck, r, b) -> None:
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
    cell.p_value = wilson_overlap_p(int(r.n_correct), int(r.n), int(b.n_correct), int(b.n))


def _verdict(delta_pts: float, tol: float, significant: bool) -> str:
    if delta_pts < -tol and significant:
        return REGRESSED
    if delta_pts > tol and significant:
        return IMPROVED
    return OK


def _decide(report: Report) -> None:
    """Adjust the compared cells' p-values together, then give each its verdict."""
    family = [c for c in report.cells if c.status == OK and c.p_value is not None]
    adjusted = adjust_pvalues([c.p_value for c in family], report.correction)
    for cell, p_adj in zip(family, adjusted, strict=True):
        cell.p_adjusted = float(p_adj)
        cell.status = _verdict(cell.delta_pts, report.tolerance_pts, cell.p_adjusted <= report.alpha)


def compare(results: Side, baseline: Side, tolerance_pts: float = 1.0, alpha: float = 0.05,
            correction: str = "holm") -> Report:
    if tolerance_pts < 0 or math.isnan(tolerance_pts):
        raise UserError("--tolerance-pts must be >= 0")
    if not 0 < alpha <= 1:
        raise UserError("--alpha must be in (0, 1]")
    if correction not in CORRECTIONS:
        raise UserError(f"--correction must be one of {', '.join(CORRECTIONS)}, got {correction!r}")
    report = Report(results, baseline, tolerance_pts, alpha, correction)
    paired = results.samples is not None and baseline.samples is not None
    if not paired:
        lacking = [s.role for s in (results, baseline) if s.samples is None]
        report.notes.append(f"no per-sample table for {' and '.join(lacking)}: summary-level, unpaired comparison "
                            "(drop beyond tolerance and Wilson intervals that do not overlap at the corrected level); "
                            "sample identity not verified")
    verify_config = results.run is not None and baseline.run is not None
    if not verify_config:
        lacking = [s.role for s in (results, baseline) if s.run is None]
        report.notes.append(f"no run.json for {' and '.join(lacking)}: attack configs not verified")
    for side in (results, baseline):
        not_run = (side.run or {}).get("checks_not_run") or []
        if not_run:
            report.notes.append(f"{side.role} ran without the gradient-masking probes (--probe-samples 0): "
                                f"{', '.join(not_run)} not checked")
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
            _paired(cell, r_smp[key], b_smp[key])
        else:
            _unpaired(cell, r_row, b_row)
        if verify_config:
            rp, bp = r_proto.get((dataset, r_row.config_hash)), b_proto.get((dataset, b_row.config_hash))
            if rp is None or bp is None:
                cell.note = "; ".join(x for x in (cell.note, "config not in run.json: not verified") if x)
            elif rp != bp:
                cell.status = CONFIG_CHANGED
                cell.note = f"attack/protocol config differs (protocol {rp} vs baseline {bp}); not compared"
        if str(r_row.get("checks_failed", "") or ""):
            cell.note = "; ".join(x for x in (cell.note, f"sanity checks failed: {r_row.checks_failed}") if x)
    _decide(report)
    return report
