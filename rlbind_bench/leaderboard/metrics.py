"""Per (model, modality, dataset) aggregates of a merged table: clean accuracy, accuracy-vs-eps AUC per
adversarial threat, mean corruption accuracy and mCE against a reference model."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from rlbind_bench.results.stats import accuracy_eps_auc, mean_corruption_accuracy, mean_corruption_error
from rlbind_bench.threats.registry import row_attack_class

CLEAN = "clean"


# The kind of a cell comes from the rows' attack-kind columns (the Attack class's data), never from its name.
def is_clean(frame: pd.DataFrame) -> pd.Series:
    return frame["attack"] == CLEAN


def is_adversarial(frame: pd.DataFrame) -> pd.Series:
    return frame["adversarial"].astype(bool)


def is_corruption(frame: pd.DataFrame) -> pd.Series:
    """Natural perturbations: neither clean nor adversarial (cells carry a severity, not an eps)."""
    return ~is_clean(frame) & ~is_adversarial(frame)


def level_label(norm: str, eps: float, severity: int, unit: str = "") -> str:
    """How a cell's strength is written everywhere: 4/255 for Linf, 0.5 for L2, -30 dB for a dB threat
    (`unit`, Attack.eps_unit), sev 3 for corruptions."""
    if severity:
        return f"sev {int(severity)}"
    if eps is None or (isinstance(eps, float) and math.isnan(eps)):
        return ""
    if unit:
        return f"{eps:.3g} {unit}"
    if norm == "Linf":
        return f"{eps * 255:.3g}/255"
    return f"{eps:.3g}"


def cell_label(threat: str, norm: str, eps: float, severity: int, unit: str = "") -> str:
    parts = [threat]
    if norm and norm != "Linf":
        parts.append(norm)
    level = level_label(norm, eps, severity, unit)
    if level:
        parts.append(level)
    return " ".join(parts)


@dataclass(frozen=True)
class RankCell:
    """The cell a dataset's models are ranked by: the strongest attack present, as RobustBench ranks by
    AutoAttack. Several threats of that attack at that norm and eps (autoattack-linf and autoattack-rand):
    a model's rank accuracy is the lowest of them."""

    attack: str
    norm: str
    eps: float
    threats: tuple[str, ...]

    @property
    def label(self) -> str:
        names = self.threats[0] if len(self.threats) == 1 else "min(" + ", ".join(self.threats) + ")"
        return cell_label(names, self.norm, self.eps, 0)


def attack_strength(attack: str) -> int:
    """The attack class's `strength` (0 for an attack this installation does not know)."""
    return row_attack_class(attack).strength


def eps_unit(attack: str) -> str:
    """The attack class's `eps_unit` ("" for input-space units, or for an attack this installation does not know)."""
    return row_attack_class(attack).eps_unit


def ranking_cell(rows: pd.DataFrame) -> RankCell | None:
    """Among one dataset's adversarial cells: the strongest attack; then Linf before other norms (the threat
    model leaderboards rank by), the eps the most models were evaluated at, the largest such eps."""
    adv = rows[is_adversarial(rows)]
    strengths = {a: attack_strength(a) for a in adv["attack"].unique()}
    if not strengths or max(strengths.values()) <= 0:
        return None
    best = max(strengths.values())
    top = adv[adv["attack"].map(strengths) == best]
    cover = top.groupby(["norm", "eps"])["model"].nunique().reset_index(name="models")
    cover["linf"] = cover["norm"] == "Linf"
    norm, eps = cover.sort_values(["linf", "models", "eps"], ascending=False)[["norm", "eps"]].iloc[0]
    cell = top[(top["norm"] == norm) & (top["eps"] - eps).abs().le(1e-12)]
    return RankCell(str(cell["attack"].iloc[0]), str(norm), float(eps), tuple(sorted(cell["threat"].unique())))


def rank_accuracy(rows: pd.DataFrame, cell: RankCell | None) -> dict[str, float]:
    """model -> its accuracy in the ranking cell (the lowest over the cell's threats); clean accuracy when the
    dataset has no ranking attack."""
    if cell is None:
        chosen = rows[is_clean(rows)]
    else:
        chosen = rows[rows["threat"].isin(cell.threats) & (rows["norm"] == cell.norm)
                      & (rows["eps"] - cell.eps).abs().le(1e-12)]
    return chosen.groupby("model")["accuracy"].min().astype(float).to_dict()


@dataclass
class DatasetAggregate:
    model: str
    modality: str
    dataset: str
    clean_acc: float = math.nan
    auc: dict[str, float] = field(default_factory=dict)  # "threat norm" -> AUC (only threats with >= 2 eps)
    mean_corruption_acc: float = math.nan
    mce: float = math.nan  # NaN without a reference or without matching corruption cells
    corruption_acc: dict[str, float] = field(default_factory=dict)  # corruption -> mean over severities
    rank_cell: RankCell | None = None  # what the dataset's models are ranked by (None: clean accuracy)
    rank_acc: float = math.nan  # this model's accuracy in that cell


def _corruption_curves(rows: pd.DataFrame) -> dict[str, dict[int, float]]:
    curves: dict[str, dict[int, float]] = {}
    for r in rows.itertuples():
        curves.setdefault(r.threat, {})[int(r.severity)] = float(r.accuracy)
    return curves


def aggregate(table: pd.DataFrame, reference: str | None = None) -> list[DatasetAggregate]:
    out = []
    ranking = {}
    for key, rows in table.groupby(["modality", "dataset"], sort=True):
        cell = ranking_cell(rows)
        ranking[key] = (cell, rank_accuracy(rows, cell))
    for (model, modality, dataset), grp in table.groupby(["model", "modality", "dataset"], sort=True):
        cell, accuracies = ranking[(modality, dataset)]
        agg = DatasetAggregate(model, modality, dataset, rank_cell=cell, rank_acc=accuracies.get(model, math.nan))
        clean = grp[is_clean(grp)]
        if len(clean):
            agg.clean_acc = float(clean["accuracy"].iloc[0])
        adv = grp[is_adversarial(grp)]
        for (threat, norm), tg in adv.groupby(["threat", "norm"], sort=True):
            if tg["eps"].nunique() >= 2:
                agg.auc[f"{threat} {norm}".strip()] = accuracy_eps_auc(tg["eps"], tg["accuracy"], agg.clean_acc)
        curves = _corruption_curves(grp[is_corruption(grp)])
        if curves:
            agg.mean_corruption_acc = mean_corruption_accuracy({c: list(v.values()) for c, v in curves.items()})
            agg.corruption_acc = {c: sum(v.values()) / len(v) for c, v in curves.items()}
            if reference is not None:
                ref_rows = table[(table["model"] == reference) & (table["modality"] == modality)
                                 & (table["dataset"] == dataset)]
                ref = _corruption_curves(ref_rows[is_corruption(ref_rows)])
                errors = {c: [1 - v[s] for s in sorted(v)] for c, v in curves.items()}
                # Severities must match one to one, else the CE ratio compares different things.
                ref_errors = {c: [1 - ref[c][s] for s in sorted(ref[c])] for c in curves
                              if c in ref and sorted(ref[c]) == sorted(curves[c])}
                agg.mce = mean_corruption_error(errors, ref_errors)
        out.append(agg)
    return out
