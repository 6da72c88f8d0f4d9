"""The training attack honours its recipe's norm (pgd_maximise), and refuses one it does not know."""

from __future__ import annotations

import pytest
import torch

from rlbind_bench.errors import ConfigError
from rlbind_bench.threats.pgd import pgd_maximise
from rlbind_bench.train.recipes import AttackSettings


def _run(norm: str, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    x = torch.rand(6, 3, 8, 8) * 0.5 + 0.25
    w = torch.randn(3 * 8 * 8)
    adv = pgd_maximise(lambda z: (z.flatten(1) @ w).sum(), x, eps=eps, steps=10, step_size=eps / 4, low=0.0,
                       high=1.0, random_init=True, g=torch.Generator().manual_seed(1), norm=norm)
    return x, adv


def test_l2_training_attack_stays_in_the_l2_ball_and_uses_it():
    """Caught: `norm` ignored (an L-inf attack at eps 0.5 moves pixels by 0.5 each: L2 distance ~ 7)."""
    x, adv = _run("L2", 0.5)
    dist = (adv - x).flatten(1).norm(dim=1)
    assert (dist <= 0.5 + 1e-5).all()
    assert (dist > 0.45).all()  # a linear loss pushes to the sphere: the ball is used, not a tiny cube


def test_linf_training_attack_stays_in_the_cube():
    x, adv = _run("Linf", 4 / 255)
    assert ((adv - x).abs().amax(dim=(1, 2, 3)) <= 4 / 255 + 1e-6).all()


def test_unknown_training_norm_is_refused():
    with pytest.raises(ConfigError, match=r"attack\.norm"):
        AttackSettings(norm="L1")
