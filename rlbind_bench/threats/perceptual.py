"""Perceptual audio budgets: L-inf PGD and AutoAttack with eps in dB relative to each clip's peak amplitude.

Carlini & Wagner (2018)'s dB_x: dB(delta) - dB(x) with dB(v) = 20 log10(max|v|). A cell's eps is that
difference, so clip i may move by at most

    budget_i = 10^(eps/20) * max|x_i|        (eps = -30 dB: 3.16% of the clip's peak)

in the waveform's units: loud clips get larger absolute budgets, quiet ones smaller, a silent clip none.
The rows keep the cell's eps in dB (`eps`) and each clip's amplitude budget (`eps_input`). dB budgets are
negative; a positive eps (a budget above the clip's peak) is refused as a units mistake, and the
amplitude budget of the loudest possible clip goes through `registry.check_eps_budget` like any other
(both skipped by --allow-large-eps).

PGD takes the per-clip budgets as a tensor (threats/pgd.py), with step 2.5 * budget_i / steps per clip.
AutoAttack takes one eps, so each clip is rescaled to make its budget a common one:

    x'   = x / p,  p = max|x|                       (the clip's peak is 1 in the scaled space)
    eps' = r = 10^(eps/20)                          (||x' + d' - x'|| <= r  <=>  ||p d'|| <= r p = budget)
    box' = [-(1 + r), 1 + r]                        (holds every x' +- r; mapped affinely to AutoAttack's [0,1],
                                                     so eps in AutoAttack's units is r / (2 (1 + r)))
    model'(x') = model(clamp(p x', low, high))      (undoes the scale; the clamp is the projection onto the
                                                     real box, which never lengthens a perturbation)

and the result is mapped back as x_adv = clamp(x + clamp(p x'_adv - x, -budget, budget), low, high) (the
inner clamp only absorbs float rounding). The reference runs its sub-attacks on subsets of a batch, so a
per-clip scale cannot ride along with a batch: each clip is a call of its own, which makes the rows
independent of the batch (AutoAttack's seed is the same for every call) and costs one AutoAttack call per
clip instead of per batch.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
from torch import nn

from rlbind_bench import _compat
from rlbind_bench.errors import ConfigError
from rlbind_bench.threats.autoattack import AutoAttackThreat, UnitBoxView, make_autoattack
from rlbind_bench.threats.base import (
    Attack,
    AttackContext,
    BatchResult,
    Cell,
    finite_rows,
    margins,
    per_sample_norm,
)
from rlbind_bench.threats.pgd import PGD
from rlbind_bench.threats.registry import register_attack
from rlbind_bench.threats.spec import AutoAttackSpec, PGDSpec

BUDGET_RULE = "per clip: 10^(eps/20) * max|x| (eps in dB relative to the clip's peak)"


def db_ratio(eps_db: float) -> float:
    return 10.0 ** (eps_db / 20.0)


def clip_budgets(x: torch.Tensor, eps_db: float) -> torch.Tensor:
    """[B] float64: each clip's L-inf budget in waveform units, 10^(eps/20) * max|x_i|."""
    return db_ratio(eps_db) * x.detach().flatten(1).abs().amax(dim=1).double()


def _check_db_spec(spec) -> None:
    if spec.norm != "Linf":
        raise ConfigError(f"threat {spec.name}: dB budgets are L-inf (relative to the clip's peak), got norm "
                          f"{spec.norm}")
    if "audio" not in spec.modalities or len(spec.modalities) != 1:
        raise ConfigError(f"threat {spec.name}: dB budgets are for audio clips only (modalities: [audio])")


def _check_db_eps(spec, e: float) -> None:
    # Positive numbers are allowed here and refused at run time (amplitude_cell), where --allow-large-eps is known.
    if not math.isfinite(e):
        raise ConfigError(f"threat {spec.name}: eps must be a finite number of dB, got {e:g}")


@dataclass(frozen=True)
class PGDdBSpec(PGDSpec):
    """L-inf PGD with eps in dB relative to each clip's peak; step 2.5 * budget / steps per clip."""

    modalities: tuple[str, ...] = ("audio",)

    def __post_init__(self):
        super().__post_init__()
        _check_db_spec(self)
        if self.step_size is not None:
            raise ConfigError(f"threat {self.name}: step_size must be null (each clip steps 2.5 * its budget / steps)")

    def check_eps(self, e: float) -> None:
        _check_db_eps(self, e)

    def summary(self) -> str:
        return f"{self.attack} Linf eps={list(self.eps)} dB (of each clip's peak) steps={self.steps}"


@dataclass(frozen=True)
class AutoAttackdBSpec(AutoAttackSpec):
    """AutoAttack with eps in dB relative to each clip's peak, one reference call per clip."""

    modalities: tuple[str, ...] = ("audio",)

    def __post_init__(self):
        super().__post_init__()
        _check_db_spec(self)

    def check_eps(self, e: float) -> None:
        _check_db_eps(self, e)

    def summary(self) -> str:
        return f"{self.attack} {self.version} Linf eps={list(self.eps)} dB (of each clip's peak)"


class DecibelBudget:
    """What the dB threats share: the unit, the budget check, and no part in rankings (leaderboards rank by
    the amplitude threats; a dB cell's eps is not comparable with theirs)."""

    eps_unit = "dB"
    strength = 0

    def amplitude_cell(self, cell: Cell, space, where: str) -> Cell:
        if cell.eps > 0:
            raise ConfigError(f"{where}: eps {cell.eps:g} dB is a budget above the clip's peak; dB budgets are "
                              f"relative to each clip's peak and negative (-30 dB: 3.2% of it): did you mean "
                              f"{-cell.eps:g}? (--allow-large-eps runs it anyway)")
        # The loudest clip the box holds has peak max(|low|, |high|): its budget is the largest any clip gets.
        return dataclasses.replace(cell, eps=db_ratio(cell.eps) * max(abs(space.low), abs(space.high)))

    def budget_config(self) -> dict:
        return {"budget": BUDGET_RULE}


@register_attack("pgd-db")
class PGDdB(DecibelBudget, PGD):
    spec_type = PGDdBSpec

    def cell_config(self, cell: Cell, num_classes: int | None = None) -> dict:
        if num_classes is not None:
            self.spec.check_classes(num_classes)
        return {**Attack.cell_config(self, cell, num_classes), **self.budget_config(),
                "step_size": "2.5 * budget / steps, per clip"}

    def run(self, model, x, y, cell: Cell, ctx: AttackContext) -> BatchResult:
        budget = clip_budgets(x, cell.eps)
        eps = budget.to(x.device, x.dtype)
        result = self.run_with_budget(model, x, y, cell, ctx, eps, 2.5 * eps / max(self.spec.steps, 1),
                                      name="pgd-db")
        result.budget = budget.cpu()
        return result


class Rescaled(nn.Module):
    """One clip's model in its scaled space: x' -> model(clamp(peak * x', low, high))."""

    def __init__(self, model: nn.Module, peak: float, low: float, high: float):
        super().__init__()
        self.model, self.peak, self.low, self.high = model, peak, low, high

    def forward(self, xs: torch.Tensor) -> torch.Tensor:
        return self.model((xs * self.peak).clamp(self.low, self.high))


@register_attack("autoattack-db")
class AutoAttackdB(DecibelBudget, AutoAttackThreat):
    spec_type = AutoAttackdBSpec
    batch_dependent = False  # one reference call per clip, with the same seed

    def cell_config(self, cell: Cell, num_classes: int | None = None) -> dict:
        return {**super().cell_config(cell, num_classes), **self.budget_config(),
                "mapping": "per clip: x' = x / max|x|, eps' = 10^(eps/20), box' = [-(1+eps'), 1+eps']"}

    def run(self, model, x, y, cell: Cell, ctx: AttackContext) -> BatchResult:
        _compat.apply("autoattack_module")
        ratio = db_ratio(cell.eps)
        budget = clip_budgets(x, cell.eps)
        clean = ctx.clean_logits
        robust = (clean.argmax(1) == y) & finite_rows(clean)
        x_adv = x.clone()
        broken_by = [""] * len(x)
        for i in robust.nonzero().squeeze(1).tolist():
            peak, bound = float(x[i].abs().max()), float(budget[i])
            if peak == 0:  # a silent clip has no budget
                continue
            view = UnitBoxView(Rescaled(model, peak, ctx.low, ctx.high), tuple(x.shape[1:]), -(1 + ratio), 1 + ratio)
            aa = make_autoattack(view, self.spec, eps=ratio, norm="Linf", n_classes=ctx.num_classes,
                                 seed=self.spec.seed + ctx.seed, device=ctx.device, iterations=self.spec.steps)
            one = [""]
            self._record_sub_attacks(aa, view, torch.ones(1, dtype=torch.bool, device=x.device), y[i:i + 1], one)
            u_adv, _ = aa.run_standard_evaluation(view.to_unit(x[i:i + 1] / peak), y[i:i + 1], batch_size=1)
            moved = view.from_unit(u_adv).detach()[0] * peak - x[i]
            x_adv[i] = (x[i] + moved.clamp(-bound, bound)).clamp(ctx.low, ctx.high)
            broken_by[i] = one[0]
        with torch.no_grad():
            logits = model(x_adv).float()
        return BatchResult(pred=logits.argmax(1).cpu(), margin=margins(logits, y).cpu(), attacked=robust.cpu(),
                           perturbation_norm=per_sample_norm(x_adv - x, "Linf").cpu(), broken_by=broken_by,
                           valid=finite_rows(logits).cpu(), budget=budget.cpu())
