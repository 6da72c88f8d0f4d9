"""Parquet schemas of the result tables. Bump SCHEMA_VERSION on any change a reader must know about."""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = "1"
METADATA_KEY = b"rlbind_bench.schema_version"

SAMPLE_FIELDS = [
    ("run_id", pa.string()),
    ("model", pa.string()),
    ("modality", pa.string()),
    ("dataset", pa.string()),
    ("sample_id", pa.string()),
    ("label", pa.int64()),
    ("threat", pa.string()),
    ("norm", pa.string()),  # "Linf", "L2" or "" (clean, corruptions)
    ("eps", pa.float64()),  # NaN where the threat has no eps
    ("severity", pa.int64()),  # 0 where the threat has no severity
    ("config_hash", pa.string()),
    ("clean_pred", pa.int64()),
    ("pred", pa.int64()),
    ("correct", pa.bool_()),
    ("seed", pa.int64()),
    ("attacked", pa.bool_()),  # False: skipped because already misclassified clean
    ("broken_by", pa.string()),  # first sub-attack that flipped the prediction ("" if none)
    ("perturbation_norm", pa.float64()),  # ||x_adv - x|| in the threat's norm (NaN: none)
    ("margin", pa.float64()),  # logit[label] - max other logit at the final input
    ("valid", pa.bool_()),  # False when the model produced NaN/Inf on this sample
]
SAMPLE_SCHEMA = pa.schema(SAMPLE_FIELDS, metadata={METADATA_KEY: SCHEMA_VERSION.encode()})
SAMPLE_COLUMNS = [name for name, _ in SAMPLE_FIELDS]

SUMMARY_FIELDS = [
    ("model", pa.string()),
    ("modality", pa.string()),
    ("dataset", pa.string()),
    ("threat", pa.string()),
    ("norm", pa.string()),
    ("eps", pa.float64()),
    ("severity", pa.int64()),
    ("config_hash", pa.string()),
    ("n", pa.int64()),
    ("n_correct", pa.int64()),
    ("accuracy", pa.float64()),  # fraction in [0, 1]
    ("ci_low", pa.float64()),  # 95% Wilson interval
    ("ci_high", pa.float64()),
    ("n_invalid", pa.int64()),
    ("n_skipped", pa.int64()),  # unreadable files
    ("checks_failed", pa.string()),  # comma-separated names of failed sanity checks ("" if none)
]
SUMMARY_SCHEMA = pa.schema(SUMMARY_FIELDS, metadata={METADATA_KEY: SCHEMA_VERSION.encode()})
SUMMARY_COLUMNS = [name for name, _ in SUMMARY_FIELDS]
