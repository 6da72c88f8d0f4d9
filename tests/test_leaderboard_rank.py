"""Leaderboards rank by accuracy under the strongest attack present (AutoAttack over PGD), as RobustBench does,
and the rank column says what it ranks by."""

from __future__ import annotations

import math

import pandas as pd

from rlbind_bench.leaderboard.metrics import aggregate, ranking_cell
from rlbind_bench.leaderboard.render import rank_column, rank_order

ROW = {"modality": "image", "dataset": "d", "severity": 0}


def cells(*rows) -> pd.DataFrame:
    """(model, threat, attack, norm, eps, accuracy) -> summary-like rows."""
    out = []
    for model, threat, attack, norm, eps, acc in rows:
        out.append({**ROW, "model": model, "threat": threat, "attack": attack, "norm": norm,
                    "eps": math.nan if eps is None else eps, "accuracy": acc,
                    "adversarial": attack not in ("clean", "corruptions")})
    return pd.DataFrame(out)


CLEAN = [("a", "clean", "clean", "", None, 0.9), ("b", "clean", "clean", "", None, 0.8),
         ("c", "clean", "clean", "", None, 0.7)]
PGD = [("a", "linf-pgd", "pgd", "Linf", 4 / 255, 0.50), ("b", "linf-pgd", "pgd", "Linf", 4 / 255, 0.40),
       ("c", "linf-pgd", "pgd", "Linf", 4 / 255, 0.45)]
# PGD overestimates a (gradient masking): AutoAttack finds it weakest
AA = [("a", "autoattack-linf", "autoattack", "Linf", 4 / 255, 0.10),
      ("b", "autoattack-linf", "autoattack", "Linf", 4 / 255, 0.35),
      ("c", "autoattack-linf", "autoattack", "Linf", 4 / 255, 0.30)]


def order(table: pd.DataFrame) -> list[str]:
    return rank_order({a.model: a for a in aggregate(table)})


def test_autoattack_outranks_pgd():
    """Break seen caught: AutoAttack's `strength` equal to PGD's (the PGD cell, larger eps-coverage tie, ranked)."""
    assert order(cells(*CLEAN)) == ["a", "b", "c"]
    assert order(cells(*CLEAN, *PGD)) == ["a", "c", "b"]
    table = cells(*CLEAN, *PGD, *AA)
    assert order(table) == ["b", "c", "a"]
    cell = ranking_cell(table)
    assert (cell.attack, cell.threats, cell.norm) == ("autoattack", ("autoattack-linf",), "Linf")
    assert rank_column(cell) == "Rank (autoattack-linf 4/255)"
    assert rank_column(ranking_cell(cells(*CLEAN))) == "Rank (clean)"


def test_several_threats_of_the_strongest_attack_take_the_lowest():
    rand = [("b", "autoattack-rand", "autoattack", "Linf", 4 / 255, 0.05),
            ("c", "autoattack-rand", "autoattack", "Linf", 4 / 255, 0.30)]
    table = cells(*CLEAN, *AA, *rand)
    assert order(table) == ["c", "a", "b"]
    assert rank_column(ranking_cell(table)) == "Rank (min(autoattack-linf, autoattack-rand) 4/255)"


def test_linf_first_then_the_eps_most_models_have():
    l2 = [(m, "autoattack-l2", "autoattack", "L2", 0.5, acc) for m, acc in (("a", 0.9), ("b", 0.1), ("c", 0.2))]
    table = cells(*CLEAN, *AA, *l2)
    assert ranking_cell(table).norm == "Linf"
    # 8/255 only for one model: the eps all three were evaluated at ranks them
    extra = [("c", "autoattack-linf", "autoattack", "Linf", 8 / 255, 0.01)]
    cell = ranking_cell(cells(*CLEAN, *AA, *extra))
    assert cell.eps == 4 / 255
    # every model at both eps: the larger one
    both = [(m, "autoattack-linf", "autoattack", "Linf", 8 / 255, acc) for m, acc in (("a", 0.2), ("b", 0.1),
                                                                                       ("c", 0.05))]
    table = cells(*CLEAN, *AA, *both)
    assert ranking_cell(table).eps == 8 / 255
    assert order(table) == ["a", "b", "c"]


def test_a_model_without_the_ranking_cell_comes_last():
    table = cells(*CLEAN, *AA[1:])
    assert order(table) == ["b", "c", "a"]


def test_a_model_without_the_ranking_cell_gets_no_rank_number():
    """Listed last, but without a place: a PGD-only model is not worse than every AutoAttack-evaluated one.
    Break seen caught: numbering every listed model."""
    from rlbind_bench.leaderboard.render import _adversarial_table

    table = cells(*CLEAN, *PGD, *AA[1:])
    table = table.assign(n=100, checks_failed="", flags="", ci_low=0.0, ci_high=1.0)
    aggs = {a.model: a for a in aggregate(table)}
    view = _adversarial_table(table, rank_order(aggs), aggs, None)
    assert [(row[0].value, row[1].value) for row in view.rows] == [(1, "b"), (2, "c"), (None, "a")]
    assert any(note.startswith("Not ranked (1 models, listed last): no autoattack-linf") for note in view.notes)
