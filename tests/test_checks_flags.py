"""The gradient-masking flags of threats/checks.py end to end (probe_batch -> apply_checks ->
summary.checks_failed): each raised by a tiny model built here to have that defect, none by a plain
linear model."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from torch import nn

from rlbind_bench.threats.checks import CHECKS, apply_checks, probe_batch

EPS = 1 / 255  # the probe's small L-inf eps (steps check) on a [0, 1] box
N = 32


class Linear(nn.Module):
    """4 classes, linear in the pixels: every attack works on it, nothing should be flagged."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3 * 8 * 8, 4)
        with torch.no_grad():
            self.lin.weight.copy_(torch.randn(4, 3 * 8 * 8, generator=torch.Generator().manual_seed(0)))
            self.lin.bias.zero_()

    def forward(self, x):
        return self.lin(x.flatten(1))


class Noisy(Linear):
    """A randomised defence: fresh Gaussian noise on the logits at every forward."""

    def forward(self, x):
        out = super().forward(x)
        return out + 0.5 * out.abs().mean() * torch.randn_like(out)


class Quantised(Linear):
    """Inputs rounded to 4 levels first: round() has a zero derivative, so every input gradient is 0."""

    def forward(self, x):
        return super().forward(torch.round(x * 4) / 4)


class Confident(Linear):
    """A huge fixed bias towards class 0 and tiny pixel weights: still right at a very large eps, although
    its gradients are fine. The check is a heuristic: it flags such a model for a human to look at."""

    def forward(self, x):
        out = 1e-3 * super().forward(x)
        return out + torch.tensor([30.0, 0.0, 0.0, 0.0])


class Ripple(nn.Module):
    """Shattered gradients: class 1 wins only when pixel (0, 0, 0) rises by ~0.8 eps or more from 0.5, but
    a ripple of period eps/4 on that logit makes the sign of the gradient flip every eighth of an eps.
    Small PGD steps (eps/8 for 20 steps) get trapped between ripples; big ones (eps/2 for 5 steps) step
    over them and climb: more steps leave more samples correct."""

    period = 0.25

    def forward(self, x):
        u = (x[:, 0, 0, 0] - 0.5) / EPS  # displacement of the watched pixel, in eps
        amplitude = 3 * self.period / (2 * math.pi)  # gradient of the ripple 3x the slope: sign flips
        logit = u - 0.9 + amplitude * torch.sin(2 * math.pi * u / self.period)
        return torch.stack([torch.zeros_like(logit), logit], 1)


def _batch(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.rand(N, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    x[:, 0, 0, 0] = 0.5
    if isinstance(model, (Confident, Ripple)):
        y = torch.zeros(N, dtype=torch.long)
    else:
        with torch.no_grad():
            y = Linear()(x).argmax(1)  # the clean predictions of the undefended weights
    return x, y


def _summary() -> pd.DataFrame:
    """A summary whose own numbers are unsuspicious: only the probe can raise a flag."""
    rows = [("clean", "", math.nan, 0, 1.0), ("linf-pgd", "Linf", 1 / 255, 0, 0.6),
            ("linf-pgd", "Linf", 2 / 255, 0, 0.3), ("linf-pgd", "Linf", 4 / 255, 0, 0.1),
            ("corruptions:fog", "", math.nan, 3, 0.9)]
    kinds = {"clean": "clean", "linf-pgd": "pgd", "corruptions:fog": "corruptions"}
    return pd.DataFrame([{"model": "m", "modality": "image", "dataset": "d", "threat": t, "attack": kinds[t],
                          "adversarial": kinds[t] == "pgd", "norm": norm, "eps": eps, "severity": sev,
                          "accuracy": acc} for t, norm, eps, sev, acc in rows])


def _flags(model: nn.Module) -> tuple[set[str], dict]:
    torch.manual_seed(0)  # the noisy model's draws
    x, y = _batch(model)
    diag = probe_batch(model, x, y, 0.0, 1.0, norm="Linf")
    out = apply_checks(_summary(), pd.DataFrame(), {"d": diag})
    assert (out[~out["threat"].eq("linf-pgd")]["checks_failed"] == "").all()  # clean, corruptions: never
    per_cell = set(out[out["threat"] == "linf-pgd"]["checks_failed"])
    assert len(per_cell) == 1  # the probe's flags apply to every adversarial cell of the dataset
    flags = set(filter(None, per_cell.pop().split(",")))
    assert flags <= set(CHECKS)
    return flags, diag


def test_plain_linear_model_raises_nothing():
    """An honest model: no flag at all, and the probe's numbers say why (the attack reaches 0% at the large
    eps, more steps never leave more samples correct, no zero gradient, the same logits twice).

    Caught: the zero-gradient test written `>= 0` instead of `== 0` (every sample counts as zero-gradient);
    the steps comparison's tolerance turned around (`+ 1e-12` -> `- 1e-12`: a tie, as here, is flagged);
    the large eps not scaled (`LARGE_EPS[norm] / 100`: PGD at eps 0.003 leaves the model mostly right)."""
    flags, diag = _flags(Linear())
    assert flags == set(), diag
    assert diag["large_eps_accuracy"] == 0
    assert diag["zero_grad_fraction"] == 0
    assert diag["accuracy_20_steps"] <= diag["accuracy_5_steps"]


@pytest.mark.parametrize(("model", "flag"), [
    (Noisy(), "randomized_output"),
    (Quantised(), "zero_gradients"),
    (Confident(), "large_eps_not_zero"),
    (Ripple(), "more_steps_raise_accuracy"),
], ids=lambda v: v if isinstance(v, str) else type(v).__name__)
def test_each_defect_raises_its_flag(model, flag):
    """Each defective model raises its own flag on every PGD cell.

    Caught, one break per case: `randomized = False` in probe_batch (Noisy); the zero-gradient test
    written `< 0` (Quantised); apply_checks reading a misspelt key, `diag.get("large_eps_acc", 0.0)`
    (Confident); the probe running the same step count twice, `for k in (20, 20)` (Ripple)."""
    flags, diag = _flags(model)
    assert flag in flags, (flags, diag)


def test_flags_are_specific():
    """A flag about one defect is not raised by the models without it: only the noisy model is
    randomised, only the quantised one has zero gradients, and the deterministic models whose gradients
    lead somewhere (or nowhere at all) do not raise the steps check.

    Caught: the randomness test inverted, `randomized = torch.equal(a, b)` (every deterministic model
    flagged, the noisy one not)."""
    results = {type(m).__name__: _flags(m)[0] for m in (Linear(), Noisy(), Quantised(), Confident(), Ripple())}
    assert {name for name, f in results.items() if "randomized_output" in f} == {"Noisy"}
    assert {name for name, f in results.items() if "zero_gradients" in f} == {"Quantised"}
    assert not any("more_steps_raise_accuracy" in results[name] for name in ("Linear", "Quantised", "Confident"))
