"""`check`'s multiple-comparison correction, on results folders written here with known discordant counts:
the verdicts follow the adjusted p-values, the family is the compared cells only, and every output says
which correction was used."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy.stats import binomtest, false_discovery_control

from rlbind_bench.cli import main
from rlbind_bench.gate.compare import compare, load_side
from rlbind_bench.gate.report import junit_xml, markdown
from rlbind_bench.results.schema import SAMPLE_FIELDS, SAMPLE_SCHEMA, SUMMARY_FIELDS, SUMMARY_SCHEMA
from rlbind_bench.results.store import write_table_atomic

N = 50
EPS = [e / 255 for e in (1, 2, 3, 4)]
# 7 samples broken on each of two cells: exact McNemar p = 2 / 2**7 = 0.0156 each. Over 4 cells Holm's
# smallest adjusted p is 4 * 0.0156 = 0.0625 > 0.05 (nothing flagged), BH's 4 / 2 * 0.0156 = 0.031 (both).
DROPS = {EPS[0]: 7, EPS[1]: 7, EPS[2]: 0, EPS[3]: 0}


def _default(kind: pa.DataType):
    if pa.types.is_string(kind):
        return ""
    if pa.types.is_boolean(kind):
        return False
    if pa.types.is_floating(kind):
        return math.nan
    return 0


def _frame(rows: list[dict], fields) -> pd.DataFrame:
    """Rows completed with neutral values for every column of the schema (whatever it holds)."""
    return pd.DataFrame([{**{name: _default(kind) for name, kind in fields}, **row} for row in rows])


def _samples(model: str, wrong: dict[float, int], ids: dict[float, list[str]] | None = None,
             hashes: dict[float, str] | None = None) -> pd.DataFrame:
    rows = []
    for eps, n_wrong in wrong.items():
        for i, sid in enumerate((ids or {}).get(eps, [f"s{i:03d}" for i in range(N)])):
            rows.append({"run_id": "r", "model": model, "modality": "image", "dataset": "d", "sample_id": sid,
                         "threat": "linf-pgd", "norm": "Linf", "eps": eps,
                         "config_hash": (hashes or {}).get(eps, "h"),
                         "pred": int(i < n_wrong), "correct": i >= n_wrong, "attacked": True, "valid": True})
    return _frame(rows, SAMPLE_FIELDS)


def _folder(path: Path, samples: pd.DataFrame, steps: dict[str, int] | None = None) -> Path:
    """A results folder; with `steps` (config_hash -> PGD steps) also the run.json the gate reads configs from."""
    path.mkdir(parents=True)
    write_table_atomic(path / "samples.parquet", samples, SAMPLE_SCHEMA)
    if steps is not None:
        cells = [{"dataset": "d", "config_hash": h, "config": {"threat": {"name": "linf-pgd", "steps": k}}}
                 for h, k in steps.items()]
        (path / "run.json").write_text(json.dumps({"cells": cells, "datasets": [{"name": "d"}], "config": {}}))
    return path


@pytest.fixture
def sides(tmp_path) -> tuple[Path, Path]:
    baseline = _folder(tmp_path / "baseline", _samples("old", dict.fromkeys(EPS, 0)))
    results = _folder(tmp_path / "results", _samples("new", DROPS))
    return results, baseline


@pytest.mark.parametrize(("correction", "rc", "regressed", "adjusted"), [
    ("none", 1, 2, 2 / 2**7),
    ("holm", 0, 0, 4 * 2 / 2**7),
    ("bh", 1, 2, 2 * 2 / 2**7),
])
def test_check_correction_decides_and_is_named(sides, tmp_path, capsys, monkeypatch, correction, rc, regressed,
                                               adjusted):
    """Two cells each significant at 0.05 on their own, two unchanged: `none` fails on both, Holm passes
    (0.0625 after adjustment), Benjamini-Hochberg fails on both (0.031); the headline, the Markdown step
    summary and the JUnit properties name the correction and the family size.

    Caught: `_decide` judging the raw p-value (`cell.p_value <= report.alpha`: Holm then fails with rc 1);
    cmd_check not passing `args.correction` to compare (bh and none then behave as Holm)."""
    results, baseline = sides
    summary_md, junit = tmp_path / "summary.md", tmp_path / "j.xml"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary_md))
    code = main(["check", "--results", str(results), "--baseline", str(baseline), "--correction", correction,
                 "--junit", str(junit)])
    out = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    assert code == rc
    named = {"none": "alpha 0.05 per cell, no multiple-comparison correction",
             "holm": "alpha 0.05, Holm-adjusted over 4 cell(s)",
             "bh": "alpha 0.05, Benjamini-Hochberg-adjusted over 4 cell(s)"}[correction]
    assert named in out
    assert named in summary_md.read_text()
    suite = ET.parse(junit).getroot().find("testsuite")
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["correction"] == correction
    assert props["corrected_cells"] == "4"
    assert int(suite.get("failures")) == regressed
    dropped = [tc for tc in suite.iter("testcase") if tc.get("name") in ("linf-pgd 1/255", "linf-pgd 2/255")]
    for tc in dropped:
        detail = (tc.find("failure") if tc.find("failure") is not None else tc.find("system-out")).text
        assert f"p adj: {adjusted:.3g}" in detail
        assert f"p: {2 / 2**7:.3g}" in detail


def test_family_is_the_compared_cells_only(tmp_path):
    """Cells set aside (attack config changed, other sample ids, only in the baseline, only in the results)
    get no adjusted p and do not enlarge the family; the compared cells' adjusted values equal Holm's (from
    its definition) and scipy's BH on theirs. The config-changed cell has a drop with p = 0.0156 of its
    own: counted, it would make the family 4 and Holm's smallest adjusted p 0.0625 (no regression).

    Caught: the family taken as every cell with a p-value (`status == OK` dropped from `_decide`'s filter:
    the config-changed cell counts, n_tested 4, and the two drops pass under Holm)."""
    base = _samples("old", {**dict.fromkeys(EPS, 0), 5 / 255: 0, 16 / 255: 0})
    res = _samples("new", {**DROPS, EPS[3]: 7, 5 / 255: 0, 8 / 255: 0}, ids={5 / 255: [f"x{i}" for i in range(N)]},
                   hashes={EPS[3]: "h4"})
    results = load_side(_folder(tmp_path / "r", res, steps={"h": 10, "h4": 99}), "results")
    baseline = load_side(_folder(tmp_path / "b", base, steps={"h": 10}), "baseline")
    raw = np.array([2 / 2**7, 2 / 2**7, 1.0])
    for correction, reference in (("holm", _holm_reference(raw)), ("bh", false_discovery_control(raw))):
        report = compare(results, baseline, 1.0, 0.05, correction)
        by_eps = {round(c.eps * 255): c for c in report.cells}
        assert {k: c.status for k, c in by_eps.items()} == {
            1: "regressed", 2: "regressed", 3: "ok", 4: "config-changed", 5: "samples-differ", 8: "new",
            16: "missing"}
        assert report.n_tested == 3
        np.testing.assert_allclose([by_eps[k].p_adjusted for k in (1, 2, 3)], reference, rtol=1e-12)
        assert all(by_eps[k].p_adjusted is None for k in (4, 5, 8, 16))
        assert "over 3 cell(s)" in markdown(report)
        assert b'name="corrected_cells" value="3"' in junit_xml(report)


def _holm_reference(p: np.ndarray) -> np.ndarray:
    """Holm's adjusted p-values from the definition: max over j <= i of min(1, (m - j + 1) p_(j))."""
    m, order = len(p), np.argsort(p)
    out = np.empty(m)
    for i in range(m):
        out[order[i]] = max(min(1.0, (m - j) * p[order[j]]) for j in range(i + 1))
    return out


def _summary_folder(path: Path, model: str, n_correct: dict[float, int]) -> Path:
    rows = [{"model": model, "modality": "image", "dataset": "d", "threat": "linf-pgd", "norm": "Linf", "eps": eps,
             "config_hash": "h", "n": N, "n_correct": k, "accuracy": k / N} for eps, k in n_correct.items()]
    path.mkdir(parents=True)
    write_table_atomic(path / "summary.parquet", _frame(rows, SUMMARY_FIELDS), SUMMARY_SCHEMA)
    return path


def test_unpaired_none_is_the_wilson_overlap_rule_and_holm_adjusts_it(tmp_path):
    """Summary-only sides: with `none` a cell regresses exactly when the drop exceeds the tolerance and
    the two 95% Wilson intervals (scipy's) do not overlap; with Holm its p-values are adjusted over the
    cells, so a drop that is just significant on its own no longer is.

    Caught: `_unpaired` no longer setting `cell.p_value` (then no unpaired cell is ever tested: no
    regression with `none`)."""
    base = {EPS[0]: 40, EPS[1]: 40, EPS[2]: 40, EPS[3]: 40}
    new = {EPS[0]: 20, EPS[1]: 26, EPS[2]: 33, EPS[3]: 40}
    baseline = load_side(_summary_folder(tmp_path / "b", "old", base), "baseline")
    results = load_side(_summary_folder(tmp_path / "r", "new", new), "results")
    plain = compare(results, baseline, 1.0, 0.05, "none")
    expected = {}
    for eps in EPS:
        r = binomtest(new[eps], N).proportion_ci(0.95, method="wilson")
        b = binomtest(base[eps], N).proportion_ci(0.95, method="wilson")
        expected[eps] = "regressed" if (base[eps] - new[eps]) / N * 100 > 1 and r.high < b.low else "ok"
    assert {c.eps: c.status for c in plain.cells} == expected
    assert sorted(expected.values()) == ["ok", "ok", "regressed", "regressed"]  # the case is not trivial
    holm = compare(results, baseline, 1.0, 0.05, "holm")
    raw = np.array([c.p_value for c in holm.cells])
    np.testing.assert_allclose([c.p_adjusted for c in holm.cells], _holm_reference(raw), rtol=1e-12)
    assert [c.status for c in holm.cells] == ["regressed" if p <= 0.05 else "ok" for p in _holm_reference(raw)]
    assert [c.status for c in holm.cells].count("regressed") < [c.status for c in plain.cells].count("regressed")
