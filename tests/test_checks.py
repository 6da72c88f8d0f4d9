"""Gradient-masking sanity checks: each raised by a model or table built to trip it, and quiet otherwise."""

from __future__ import annotations

import math

import pandas as pd
import torch
from torch import nn

from rlbind_bench.threats.checks import apply_checks, probe_batch


class Linear(nn.Module):
    def __init__(self, masked=False, noisy=False):
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(3 * 8 * 8, 4)
        self.masked, self.noisy = masked, noisy

    def forward(self, x):
        if self.masked:  # a non-differentiable quantiser: gradients vanish
            x = (x * 4).round().detach() / 4 + 0 * x
        out = self.lin(x.flatten(1))
        return out + torch.randn_like(out) if self.noisy else out


def _probe(model):
    x = torch.rand(16, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = model(x).argmax(1)
    return probe_batch(model, x, y, 0.0, 1.0, steps=10)


def test_probe_clean_model_passes():
    d = _probe(Linear())
    assert d["zero_grad_fraction"] == 0
    assert not d["randomized_output"]
    assert d["large_eps_accuracy"] <= 0.1
    assert d["accuracy_20_steps"] <= d["accuracy_5_steps"]


def test_probe_flags_masking_and_randomness():
    masked = _probe(Linear(masked=True))
    assert masked["zero_grad_fraction"] == 1.0
    assert masked["large_eps_accuracy"] > 0.1
    assert _probe(Linear(noisy=True))["randomized_output"]


def _summary(rows):
    cols = ["model", "modality", "dataset", "threat", "attack", "norm", "eps", "severity", "accuracy"]
    frame = pd.DataFrame([dict(zip(cols, r, strict=True)) for r in rows])
    frame["adversarial"] = frame["attack"] == "pgd"
    return frame


def test_table_checks():
    s = _summary([
        ("m", "image", "d", "clean", "clean", "", math.nan, 0, 0.5),
        ("m", "image", "d", "pgd", "pgd", "Linf", 1 / 255, 0, 0.6),  # above clean
        ("m", "image", "d", "pgd", "pgd", "Linf", 2 / 255, 0, 0.2),
        ("m", "image", "d", "pgd", "pgd", "Linf", 4 / 255, 0, 0.3),  # rises with eps
        ("m", "image", "d", "corruptions:fog", "corruptions", "", math.nan, 3, 0.9),  # not adversarial: never flagged
    ])
    samples = pd.DataFrame({"dataset": ["d"], "threat": ["pgd"], "eps": [2 / 255], "broken_by": ["square"]})
    out = apply_checks(s, samples, {"d": {"zero_grad_fraction": 0.0}})
    more = apply_checks(s, samples, {"d": {"accuracy_5_steps": 0.2, "accuracy_20_steps": 0.3}})
    assert all("more_steps_raise_accuracy" in f for f in more[more["threat"] == "pgd"]["checks_failed"])
    flags = dict(zip(zip(out["threat"], out["eps"].round(6), strict=True), out["checks_failed"], strict=True))
    assert flags[("pgd", round(1 / 255, 6))] == "robust_above_clean"
    assert flags[("pgd", round(2 / 255, 6))] == "square_beats_whitebox"
    assert flags[("pgd", round(4 / 255, 6))] == "not_monotone_in_eps"
    assert out[out["threat"].str.startswith("corruptions")]["checks_failed"].iloc[0] == ""
    assert out[out["threat"] == "clean"]["checks_failed"].iloc[0] == ""
