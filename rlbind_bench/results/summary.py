"""Per-cell summary of the sample rows: n, accuracy and its 95% Wilson interval, balanced accuracy."""

from __future__ import annotations

import math

import pandas as pd

from rlbind_bench.results.schema import SUMMARY_COLUMNS
from rlbind_bench.results.stats import wilson_interval

GROUP_KEYS = ["model", "modality", "dataset", "threat", "attack", "adversarial", "norm", "eps", "severity",
              "config_hash", "source_model"]


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
                       checks_failed="")
            rows.append(rec)
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
