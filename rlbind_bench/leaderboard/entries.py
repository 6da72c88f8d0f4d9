"""One JSON per model (schema in leaderboard/schema.py): cells, aggregates, RobustBench-shaped entries,
provenance of every run that contributed."""

from __future__ import annotations

import math

import pandas as pd

from rlbind_bench.files import slugify
from rlbind_bench.leaderboard.merge import Merged
from rlbind_bench.leaderboard.metrics import aggregate, eps_unit, is_adversarial, is_clean, level_label
from rlbind_bench.leaderboard.schema import (
    MODEL_SCHEMA_ID,
    MODEL_SCHEMA_VERSION,
    json_number,
    json_safe,
    validate_model_entry,
)
from rlbind_bench.threats.registry import row_attack_class


def model_slugs(models: list[str]) -> dict[str, str]:
    """model -> unique file name (slug.json); collisions get a numeric suffix in name order."""
    out, used = {}, set()
    for m in sorted(models):
        base = slugify(m, "model")
        slug, k = base, 1
        while slug.lower() in used:
            k += 1
            slug = f"{base}-{k}"
        used.add(slug.lower())
        out[m] = slug + ".json"
    return out


def _split(text: str) -> list[str]:
    return [t for t in str(text or "").split(",") if t]


def _cell(r) -> dict:
    return {"modality": r.modality, "dataset": r.dataset, "threat": r.threat, "norm": r.norm,
            "eps": json_number(r.eps), "severity": int(r.severity), "accuracy": json_number(r.accuracy),
            "ci_low": json_number(r.ci_low), "ci_high": json_number(r.ci_high), "n": int(r.n),
            "n_correct": int(r.n_correct), "n_invalid": int(r.n_invalid), "n_skipped": int(r.n_skipped),
            "config_hash": r.config_hash, "run_id": r.run_id, "checks_failed": _split(r.checks_failed),
            "flags": _split(r.flags)}


def _robustbench(model: str, rows: pd.DataFrame, aggs: dict) -> list[dict]:
    """RobustBench model-info shape (robustbench.utils.ModelInfo), numbers as fractions, one per threat eps.

    Adversarial: robust_acc is the threat's accuracy; autoattack_acc (RobustBench's field) only when the
    threat ran AutoAttack, so a PGD number is never passed off as an AutoAttack one. Corruptions:
    corruptions_acc (mean over corruptions x severities) and corruptions_mce (null without a reference)."""
    out = []
    base = {"link": None, "name": model, "authors": None, "additional_data": None, "number_forward_passes": 1,
            "venue": None, "architecture": None, "reported": None, "footnote": None}
    for (modality, dataset), grp in rows.groupby(["modality", "dataset"], sort=True):
        agg = aggs[(modality, dataset)]
        clean = json_number(agg.clean_acc)
        out.extend({**base, "dataset": dataset, "modality": modality, "threat": r.threat, "threat_model": r.norm,
                    "attack": r.attack or None, "eps": json_number(r.eps),
                    "eps_label": level_label(r.norm, r.eps, 0, eps_unit(r.attack)), "clean_acc": clean,
                    "robust_acc": json_number(r.accuracy),
                    **({"autoattack_acc": json_number(r.accuracy)} if r.attack == "autoattack"
                       else {})}
                   for r in grp[is_adversarial(grp)].itertuples() if _robust_accuracy(r.attack))
        if not math.isnan(agg.mean_corruption_acc):
            out.append({**base, "dataset": dataset, "modality": modality, "threat": "corruptions",
                        "threat_model": "corruptions", "eps": None, "clean_acc": clean,
                        "corruptions_acc": json_number(agg.mean_corruption_acc),
                        "corruptions_mce": json_number(agg.mce)})
    return out


def _robust_accuracy(attack: str) -> bool:
    """Whether a cell's accuracy is a robust accuracy in RobustBench's sense: a white-box attack on the label.
    Not the label-free embedding threat (accuracy is a by-product), the targeted one (its measure is the
    target success), nor transfer (black-box, an upper bound). Rows of an attack this installation does not
    know (schema-1 rows have none) were PGD or AutoAttack."""
    cls = row_attack_class(attack)
    return cls.white_box and cls.measure.column == "accuracy"


def _runs(merged: Merged, rows: pd.DataFrame) -> list[dict]:
    out = []
    for folder in merged.folders:
        used = rows[(rows["run_id"] == folder.run_id) & (rows["source"] == folder.source)]
        if used.empty:
            continue
        run = folder.run
        out.append(json_safe({
            "run_id": folder.run_id, "source": folder.source, "started": run.get("started"),
            "finished": run.get("finished"), "device": run.get("device"), "config": run.get("config"),
            "provenance": run.get("provenance"), "skipped_files": run.get("skipped_files"),
            "config_hashes": sorted(used["config_hash"].unique().tolist())}))
    return out


def build_entries(merged: Merged, reference: str | None = None) -> dict[str, dict]:
    """model -> a validated model JSON object."""
    all_aggs = aggregate(merged.table, reference)
    slugs = model_slugs(merged.models)
    entries = {}
    for model in merged.models:
        rows = merged.table[merged.table["model"] == model]
        aggs = {(a.modality, a.dataset): a for a in all_aggs if a.model == model}
        summaries = [{"modality": a.modality, "dataset": a.dataset, "clean_acc": json_number(a.clean_acc),
                      "auc": {k: json_number(v) for k, v in a.auc.items()},
                      "mean_corruption_acc": json_number(a.mean_corruption_acc), "mce": json_number(a.mce)}
                     for a in aggs.values()]
        ordered = pd.concat([rows[is_clean(rows)], rows[~is_clean(rows)]])
        entry = {"schema": MODEL_SCHEMA_ID, "schema_version": MODEL_SCHEMA_VERSION, "name": model,
                 "slug": slugs[model].removesuffix(".json"), "reference": reference,
                 "cells": [_cell(r) for r in ordered.itertuples()], "summaries": summaries,
                 "robustbench": _robustbench(model, rows, aggs), "runs": _runs(merged, rows)}
        entries[model] = validate_model_entry(entry)
    return entries
