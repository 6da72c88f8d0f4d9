"""Per-cell summary of the sample rows: n, accuracy and its 95% Wilson interval, balanced accuracy, and for the
embedding-space threats the cosine kept and the targeted success rate."""

from __future__ import annotations

import math

import pandas as pd

from rlbind_bench.results.schema import (
    COSINE_THRESHOLDS,
    EMBEDDING_SUMMARY_DEFAULTS,
    SUMMARY_COLUMNS,
    cosine_fraction_column,
)
from rlbind_bench.results.stats import wilson_interval

GROUP_KEYS = ["model", "modality", "dataset", "threat", "attack", "adversarial", "norm", "eps", "severity",
              "config_hash", "source_model"]


def embedding_summary(valid: pd.DataFrame) -> dict:
    """Mean cosine kept and the fraction at or above each threshold (over valid rows that measured it), and the
    fraction of targeted rows whose target was hit (`target_hit`: the success criterion of the row's target
    kind); NaN where the cell measured neither."""
    out = dict(EMBEDDING_SUMMARY_DEFAULTS)
    if "embedding_cosine" in valid.columns:
        cos = valid["embedding_cosine"].dropna()
        if len(cos):
            out["mean_cosine"] = float(cos.mean())
            out.update({cosine_fraction_column(t): float((cos >= t).mean()) for t in COSINE_THRESHOLDS})
    if "target" in valid.columns:
        targeted = valid[valid["target"] >= 0]
        if len(targeted):
            out["target_success"] = float(targeted["target_hit"].astype(bool).mean())
    return out


def summarise(samples: pd.DataFrame, skipped: dict[str, list[str]] | None = None) -> pd.DataFrame:
    rows = []
    if "source_model" not in samples.columns:  # frames built by hand (not read_table, which upgrades): no transfer
        samples = samples.assign(source_model="")
    if len(samples):
        for key, grp in samples.groupby(GROUP_KEYS, dropna=False, sort=True):
            valid = grp[grp["valid"]]
            n, k = len(valid), int(valid["correct"].sum())
            lo, hi = wilson_interval(k, n)
            rec = dict(zip(GROUP_KEYS, key, strict=True))
            # Mean per-class recall over the classes present: real sets (LLVIP) are imbalanced.
            balanced = float(valid.groupby("label")["correct"].mean().mean()) if n else math.nan
            rec.update(n=n, n_correct=k, accuracy=(k / n if n else math.nan), balanced_accuracy=balanced,
                       ci_low=lo, ci_high=hi,
                       n_invalid=int((~grp["valid"]).sum()), n_skipped=len((skipped or {}).get(rec["dataset"], [])),
                       checks_failed="", **embedding_summary(valid))
            rows.append(rec)
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
