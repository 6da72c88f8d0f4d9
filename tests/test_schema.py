"""Results-schema policy: older result files stay readable (upgraded), and the current schema carries the
attack kind read from the Attack classes."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rlbind_bench.errors import UserError
from rlbind_bench.results.schema import SAMPLE_COLUMNS, SUMMARY_COLUMNS
from rlbind_bench.results.store import read_table
from rlbind_bench.results.summary import summarise

COMMITTED_SCHEMA_1 = Path(__file__).resolve().parents[1] / "leaderboards" / "demo" / "runs" / "rlbind"

SCHEMA_1_SAMPLE_COLUMNS = ["run_id", "model", "modality", "dataset", "sample_id", "label", "threat", "norm", "eps",
                           "severity", "config_hash", "clean_pred", "pred", "correct", "seed", "attacked",
                           "broken_by", "perturbation_norm", "margin", "valid"]


def _write_schema_1(path: Path) -> None:
    """A schema-1 samples file written with pyarrow directly (not with the code under test)."""
    rows = [("r", "m", "image", "d", f"s{i}", i % 2, threat, norm, eps, sev, "h", i % 2, pred, pred == i % 2, 0,
             True, "", 0.0, 1.0, True)
            for i, (threat, norm, eps, sev, pred) in enumerate([
                ("clean", "", math.nan, 0, 0), ("linf-pgd", "Linf", 1 / 255, 0, 0),
                ("autoattack-l2", "L2", 0.5, 0, 1), ("corruptions:fog", "", math.nan, 3, 1)])]
    frame = pd.DataFrame(rows, columns=SCHEMA_1_SAMPLE_COLUMNS)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata({b"rlbind_bench.schema_version": b"1"})
    pq.write_table(table, path)


def test_a_schema_1_file_is_read_with_the_attack_kind_filled_in(tmp_path):
    """Breaks when read_table stops upgrading older files (seen failing with the upgrade step removed:
    "results schema version 1, this rlbind-bench reads 2") or derives the kind wrongly."""
    path = tmp_path / "samples.parquet"
    _write_schema_1(path)
    frame = read_table(path)
    assert list(frame["adversarial"]) == [False, True, True, False]
    assert list(frame["attack"]) == ["clean", "", "", "corruptions"]
    assert set(SAMPLE_COLUMNS) <= set(frame.columns)


def test_an_unknown_schema_version_is_refused(tmp_path):
    path = tmp_path / "samples.parquet"
    _write_schema_1(path)
    table = pq.read_table(path).replace_schema_metadata({b"rlbind_bench.schema_version": b"99"})
    pq.write_table(table, path)
    with pytest.raises(UserError, match="schema version 99"):
        read_table(path)


@pytest.mark.skipif(not COMMITTED_SCHEMA_1.is_dir(), reason="the committed demo runs are not in this checkout")
def test_a_committed_schema_1_run_summarises_to_its_committed_summary():
    """A real schema-1 run (the published demo leaderboard's, committed before schema 2): its samples, read
    through the upgrade, summarise to the accuracies its own summary.parquet recorded."""
    assert pq.read_schema(COMMITTED_SCHEMA_1 / "samples.parquet").metadata[b"rlbind_bench.schema_version"] == b"1"
    samples = read_table(COMMITTED_SCHEMA_1 / "samples.parquet")
    committed = read_table(COMMITTED_SCHEMA_1 / "summary.parquet")
    ours = summarise(samples)
    assert list(ours.columns) == SUMMARY_COLUMNS
    key = ["dataset", "threat", "norm", "eps"]
    merged = ours.merge(committed, on=key, suffixes=("", "_committed"))
    assert len(merged) == len(committed) > 0
    assert (merged["n_correct"] == merged["n_correct_committed"]).all()
    assert (merged["adversarial"] == (merged["norm"] != "")).all()



def test_balanced_accuracy_is_the_mean_per_class_recall():
    """An imbalanced cell: 8 samples of class 0 all right, 2 of class 1 both wrong, one invalid row.
    accuracy 0.8, balanced accuracy (1 + 0) / 2 = 0.5. Caught: balanced accuracy computed over all rows
    (0.8) and over invalid rows too."""
    labels = [0] * 8 + [1] * 2 + [1]
    frame = pd.DataFrame({"model": "m", "modality": "image", "dataset": "d", "threat": "clean", "attack": "clean",
                          "adversarial": False, "norm": "", "eps": math.nan, "severity": 0, "config_hash": "h",
                          "label": labels, "correct": [True] * 8 + [False] * 2 + [True],
                          "valid": [True] * 10 + [False]})
    row = summarise(frame).iloc[0]
    assert row["n"] == 10
    assert row["accuracy"] == pytest.approx(0.8)
    assert row["balanced_accuracy"] == pytest.approx(0.5)
