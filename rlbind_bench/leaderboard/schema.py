"""Versioned schemas of what the leaderboard publishes: the merged Parquet table and one JSON per model.

Model JSON (``models/<slug>.json``), schema ``rlbind-bench/model``, version MODEL_SCHEMA_VERSION:

- ``schema``, ``schema_version``: ``"rlbind-bench/model"``, ``"1"``; readers refuse other versions.
- ``name`` (the results' model column, verbatim: untrusted text), ``slug`` (its file name stem).
- ``cells``: one object per (modality, dataset, threat, norm, eps, severity): accuracy, ci_low, ci_high
  (fractions in [0, 1]; JSON null where undefined, never NaN or a percent string), n, n_correct,
  n_invalid, n_skipped, config_hash, run_id, checks_failed (list of sanity-check names), flags (list).
- ``summaries``: per (modality, dataset): clean_acc, per adversarial threat the accuracy-vs-eps AUC,
  mean_corruption_acc (RobustBench's corruptions_acc) and, when a reference model was declared, mce.
- ``robustbench``: entries shaped like RobustBench's model-info JSON (name, dataset, eps, clean_acc,
  autoattack_acc or corruptions_acc/corruptions_mce, ...), one per (modality, dataset, threat, eps), with
  numbers as fractions (RobustBench writes percent strings) and extra keys modality, threat, threat_model.
- ``runs``: run_id, source folder name, started/finished, device, the run's config, its provenance
  (package versions, git hash), and the config hash of every cell it contributed.
- ``reference``: the reference model name or null.

Merged table (``leaderboard.parquet``): the summary columns plus run_id, source and flags; its Parquet
metadata carries the results schema version (so ``read_table`` accepts it as a summary) and
LEADERBOARD_SCHEMA_VERSION.
"""

from __future__ import annotations

import math

import pyarrow as pa

from rlbind_bench.errors import UserError
from rlbind_bench.results.schema import METADATA_KEY, SCHEMA_VERSION, SUMMARY_FIELDS

MODEL_SCHEMA_ID = "rlbind-bench/model"
MODEL_SCHEMA_VERSION = "1"

LEADERBOARD_METADATA_KEY = b"rlbind_bench.leaderboard_schema_version"
LEADERBOARD_SCHEMA_VERSION = "1"
LEADERBOARD_FIELDS = [
    *SUMMARY_FIELDS,
    ("run_id", pa.string()),
    ("source", pa.string()),  # results folder name the row came from
    ("flags", pa.string()),  # comma-separated merge flags, e.g. "config_conflict" ("" if none)
]
LEADERBOARD_SCHEMA = pa.schema(LEADERBOARD_FIELDS, metadata={
    METADATA_KEY: SCHEMA_VERSION.encode(), LEADERBOARD_METADATA_KEY: LEADERBOARD_SCHEMA_VERSION.encode()})
LEADERBOARD_COLUMNS = [name for name, _ in LEADERBOARD_FIELDS]

_NUMBER = (int, float)
# Required keys of each part of a model JSON and their types (None allowed where listed in _NULLABLE).
_TOP = {"schema": str, "schema_version": str, "name": str, "slug": str, "reference": str, "cells": list,
        "summaries": list, "robustbench": list, "runs": list}
_CELL = {"modality": str, "dataset": str, "threat": str, "norm": str, "eps": _NUMBER, "severity": int,
         "accuracy": _NUMBER, "ci_low": _NUMBER, "ci_high": _NUMBER, "n": int, "n_correct": int, "n_invalid": int,
         "n_skipped": int, "config_hash": str, "run_id": str, "checks_failed": list, "flags": list}
_SUMMARY = {"modality": str, "dataset": str, "clean_acc": _NUMBER, "auc": dict, "mean_corruption_acc": _NUMBER,
            "mce": _NUMBER}
_RB = {"name": str, "dataset": str, "modality": str, "threat": str, "threat_model": str, "eps": _NUMBER,
       "clean_acc": _NUMBER}
_RUN = {"run_id": str, "source": str, "config": dict, "provenance": dict, "config_hashes": list}
_NULLABLE = {"reference", "eps", "accuracy", "ci_low", "ci_high", "clean_acc", "mean_corruption_acc", "mce",
             "provenance", "config"}


def json_number(x) -> float | int | None:
    """JSON has no NaN/Inf: undefined numbers are null."""
    if x is None:
        return None
    if isinstance(x, bool):
        return x
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    if math.isnan(f) or math.isinf(f):
        return None
    return int(x) if isinstance(x, int) else f


def json_safe(obj):
    """A copy of obj (from run.json, which may hold NaN) that strict JSON can encode: NaN/Inf -> null."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, float) and (math.isnan(obj) or math.isinf(obj)):
        return None
    return obj


def _check_keys(obj, spec: dict, where: str) -> None:
    if not isinstance(obj, dict):
        raise UserError(f"{where}: expected an object")
    for key, typ in spec.items():
        if key not in obj:
            raise UserError(f"{where}: missing key {key!r}")
        value = obj[key]
        if value is None and key in _NULLABLE:
            continue
        if isinstance(value, bool) or not isinstance(value, typ):
            raise UserError(f"{where}.{key}: wrong type {type(value).__name__}")


def validate_model_entry(entry: dict) -> dict:
    """Check a model JSON against this schema version (required keys, types, no percent strings)."""
    _check_keys(entry, _TOP, "model entry")
    if entry["schema"] != MODEL_SCHEMA_ID or entry["schema_version"] != MODEL_SCHEMA_VERSION:
        raise UserError(f"model entry: schema {entry['schema']!r} version {entry['schema_version']!r}, this "
                        f"rlbind-bench reads {MODEL_SCHEMA_ID!r} version {MODEL_SCHEMA_VERSION!r}")
    for i, cell in enumerate(entry["cells"]):
        _check_keys(cell, _CELL, f"cells[{i}]")
        for key in ("accuracy", "ci_low", "ci_high"):
            if cell[key] is not None and not 0.0 <= cell[key] <= 1.0:
                raise UserError(f"cells[{i}].{key}: {cell[key]} is not a fraction in [0, 1]")
    for i, summary in enumerate(entry["summaries"]):
        _check_keys(summary, _SUMMARY, f"summaries[{i}]")
    for i, rb in enumerate(entry["robustbench"]):
        _check_keys(rb, _RB, f"robustbench[{i}]")
    for i, run in enumerate(entry["runs"]):
        _check_keys(run, _RUN, f"runs[{i}]")
    return entry
