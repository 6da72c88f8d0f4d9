"""Gradient-masking sanity checks, stored as structured fields (summary.checks_failed, run.json "checks").

Modelled on AutoAttack's checks.py; each check says when it is raised and what it suggests.
A failed check does not change any number: it marks the cells whose numbers should not be trusted.

Which checks a cell gets depends on its attack class (threats/base.Attack): the probes of the model
(large_eps_not_zero, zero_gradients, randomized_output, more_steps_raise_accuracy) concern its gradients and
apply to every adversarial cell; robust_above_clean reads accuracy as the attack's success, so it skips
label-free attacks (the embedding threat: accuracy there is a by-product, and may rise); not_monotone_in_eps
compares a threat's cells by the attack's `measure` (accuracy, or the cosine kept, which must not rise with
eps, or the targeted success rate, which must not fall); more_steps_raise_cosine (the embedding threat's own
probe: more steps must not keep more cosine) applies to label-free cells.
White-box only (Attack.white_box): the probes, monotonicity in eps and square_beats_whitebox skip the
transfer threat, whose gradients are the source's; the dB threats are white-box (a dB cell's budget grows
with its eps, so monotonicity holds as for PGD).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd
import torch
import torch.nn.functional as F

from rlbind_bench.threats.base import Measure, PassCount
from rlbind_bench.threats.embedding import EMBEDDING_LOSSES, attack_embedding
from rlbind_bench.threats.pgd import pgd
from rlbind_bench.threats.registry import is_white_box, row_attack_class

LARGE_EPS = {"Linf": 0.3, "L2": 20.0}  # "very large": a working attack must reach ~0% here
LARGE_EPS_MAX_ACCURACY = 0.1
ZERO_GRAD_MAX_FRACTION = 0.05
STEPS_CHECK = (5, 20)  # the convergence probes' step counts: more steps must not help the model


@dataclass(frozen=True)
class CheckInfo:
    name: str
    raised_if: str
    meaning: str


CHECKS = {c.name: c for c in (
    CheckInfo("robust_above_clean", "a threat cell's accuracy exceeds clean accuracy",
              "the attack makes the model better: broken attack or randomised model"),
    CheckInfo("not_monotone_in_eps", "accuracy (embedding attacks: cosine kept) rises, or a targeted attack's "
              "success rate falls, with eps within one threat",
              "the attack is too weak at the larger eps (too few steps, bad step size, masked gradients)"),
    CheckInfo("large_eps_not_zero", f"PGD at a very large eps ({LARGE_EPS}) leaves > {LARGE_EPS_MAX_ACCURACY:.0%} correct",
              "gradients do not lead anywhere: gradient masking or obfuscation"),
    CheckInfo("zero_gradients", f"more than {ZERO_GRAD_MAX_FRACTION:.0%} of samples have an all-zero input gradient",
              "saturated or non-differentiable preprocessing masks the gradient; white-box numbers are upper bounds"),
    CheckInfo("randomized_output", "two forwards of the same input give different logits",
              "a randomised defence: attack with EOT (the autoattack-rand threat, or PGD eot_iter > 1) before trusting numbers"),
    CheckInfo("more_steps_raise_accuracy", "PGD with 4x the steps leaves more samples correct than with fewer steps",
              "the attack is not converging (step size, masked or noisy gradients)"),
    CheckInfo("more_steps_raise_cosine", "embedding PGD with 4x the steps keeps more cosine than with fewer steps",
              "the embedding attack is not converging (step size, masked or noisy gradients)"),
    CheckInfo("square_beats_whitebox", "Square (black-box) breaks samples that APGD/FAB did not",
              "white-box attacks are failing: likely gradient masking"),
)}


def probe_batch(model, x: torch.Tensor, y: torch.Tensor, low: float, high: float, norm: str = "Linf",
                steps: int = 20) -> dict:
    """Diagnostics on one batch: zero-gradient fraction, output randomness, accuracy at a very large eps."""
    with torch.no_grad():
        a, b = model(x), model(x)
    randomized = not torch.equal(a, b)
    xg = x.clone().requires_grad_(True)
    loss = F.cross_entropy(model(xg).float(), y, reduction="sum")
    grad, = torch.autograd.grad(loss, xg)
    zero = (grad.flatten(1).abs().amax(dim=1) == 0).float().mean().item()
    eps = LARGE_EPS[norm] * (high - low)
    adv, _ = pgd(model, x, y, eps=eps, norm=norm, steps=steps, step_size=2.5 * eps / steps, low=low, high=high,
                 ids=[str(i) for i in range(len(x))], seed=0, salt="large-eps-check")
    with torch.no_grad():
        acc = (model(adv).argmax(1) == y).float().mean().item()
    # Same small eps, 5 vs 20 steps: more steps must not leave more samples correct.
    small = (1 / 255 if norm == "Linf" else 0.25) * (high - low)
    few_many = []
    for k in STEPS_CHECK:
        a, _ = pgd(model, x, y, eps=small, norm=norm, steps=k, step_size=2.5 * small / k, low=low, high=high,
                   ids=[str(i) for i in range(len(x))], seed=0, salt=f"steps-check-{k}")
        with torch.no_grad():
            few_many.append((model(a).argmax(1) == y).float().mean().item())
    return {"zero_grad_fraction": zero, "randomized_output": randomized, "large_eps": eps,
            "large_eps_accuracy": acc, "steps_check_eps": small, "accuracy_5_steps": few_many[0],
            "accuracy_20_steps": few_many[1], "n": len(x)}


def probe_budget(label_free: bool, steps: int = 20) -> PassCount:
    """Passes per probed sample of threats/probes.diagnose (its clean forward, then `probe_batch`, and
    `probe_embedding` where `label_free`), at most: counted from the code above, each `pgd` one restart (its
    steps and a final forward) followed by an accuracy forward."""
    pgd_runs = (steps, *STEPS_CHECK)
    total = PassCount(forward=1 + 2, backward=1)  # the predictions probed against; randomness; the gradient
    total += PassCount(forward=2 * len(pgd_runs), backward=sum(pgd_runs))
    if label_free:  # the reference embedding, then per run its steps and the cosine forward
        total += PassCount(forward=1 + len(STEPS_CHECK), backward=sum(STEPS_CHECK))
    return total


def probe_embedding(model, x: torch.Tensor, low: float, high: float, norm: str = "Linf") -> dict:
    """The embedding threat's convergence probe: mean cosine kept after embedding PGD (cosine loss) with 5 and
    with 20 steps at a small eps; more steps must not keep more."""
    small = (1 / 255 if norm == "Linf" else 0.25) * (high - low)
    with torch.no_grad():
        ref = model.embed(x)
    kept = []
    for k in STEPS_CHECK:
        adv = attack_embedding(model, x, lambda emb: EMBEDDING_LOSSES["cosine"](emb, ref), eps=small, norm=norm,
                               steps=k, step_size=2.5 * small / k, low=low, high=high,
                               ids=[str(i) for i in range(len(x))], seed=0, salt="embedding-steps-check")
        with torch.no_grad():
            kept.append(F.cosine_similarity(model.embed(adv), ref, dim=-1).mean().item())
    return {"embedding_steps_check_eps": small, "cosine_5_steps": kept[0], "cosine_20_steps": kept[1]}


def _attack_info(name: str) -> tuple[bool, Measure]:
    """(label_free, measure) of an attack kind; a kind this installation does not know (or a schema-1 row's
    "") is read as an attack on the label."""
    cls = row_attack_class(name)
    return cls.label_free, cls.measure


def apply_checks(summary: pd.DataFrame, samples: pd.DataFrame, diagnostics: dict) -> pd.DataFrame:
    """Fill summary.checks_failed for the adversarial cells (the rows' `adversarial` column); diagnostics per
    dataset."""
    summary = summary.copy()
    failed: dict[int, set[str]] = {i: set() for i in summary.index}
    for dataset, grp in summary.groupby("dataset"):
        clean = grp[grp["attack"] == "clean"]
        clean_acc = float(clean["accuracy"].iloc[0]) if len(clean) else math.nan
        diag = diagnostics.get(dataset, {})
        for i, row in grp.iterrows():
            if not row["adversarial"]:
                continue
            label_free, _ = _attack_info(row["attack"])
            if label_free:
                if diag.get("cosine_20_steps", 0.0) > diag.get("cosine_5_steps", 1.0) + 1e-6:
                    failed[i].add("more_steps_raise_cosine")
            elif row["accuracy"] > clean_acc + 1e-12:
                failed[i].add("robust_above_clean")
            if not is_white_box(row["attack"]):  # transfer: the probes judge the target's gradients, unused here
                continue
            if diag.get("large_eps_accuracy", 0.0) > LARGE_EPS_MAX_ACCURACY:
                failed[i].add("large_eps_not_zero")
            if diag.get("zero_grad_fraction", 0.0) > ZERO_GRAD_MAX_FRACTION:
                failed[i].add("zero_gradients")
            if diag.get("randomized_output"):
                failed[i].add("randomized_output")
            if diag.get("accuracy_20_steps", 0.0) > diag.get("accuracy_5_steps", 1.0) + 1e-12:
                failed[i].add("more_steps_raise_accuracy")
        white_box = grp["adversarial"].astype(bool) & grp["attack"].map(is_white_box)
        for _threat, tg in grp[white_box].groupby(["threat", "norm"]):
            ordered = tg.sort_values("eps")
            _, measure = _attack_info(ordered["attack"].iloc[0])
            # Oriented so that a stronger attack gives a smaller number: it must not rise with eps.
            values = ordered[measure.column].to_numpy() * (1 if measure.lower_is_stronger else -1)
            for j in range(1, len(values)):
                if values[j] > values[j - 1] + 1e-12:
                    failed[ordered.index[j]].add("not_monotone_in_eps")
    if len(samples):
        square = samples[samples["broken_by"] == "square"]
        for (dataset, threat, eps), _ in square.groupby(["dataset", "threat", "eps"]):
            hit = summary[(summary["dataset"] == dataset) & (summary["threat"] == threat) & (summary["eps"] == eps)]
            for i in hit.index:
                failed[i].add("square_beats_whitebox")
    summary["checks_failed"] = [",".join(sorted(failed[i])) for i in summary.index]
    return summary
