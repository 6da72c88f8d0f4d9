"""The paired bootstrap for real-valued scores (seed-averaged per-sample accuracy; docs/results-demo.md claims)."""

from __future__ import annotations

import numpy as np
import pytest

from rlbind_bench.results import stats


def test_on_0_1_outcomes_it_agrees_with_the_exact_multinomial_form():
    g = np.random.default_rng(3)
    a = g.random(400) < 0.6
    b = np.where(g.random(400) < 0.8, a, ~a)
    exact = stats.paired_bootstrap_diff(a, b, n_boot=20_000, rng=1)
    mean = stats.paired_bootstrap_mean_diff(a.astype(float), b.astype(float), n_boot=20_000, rng=1)
    assert mean.diff == pytest.approx(exact.diff)
    assert mean.low == pytest.approx(exact.low, abs=0.006)
    assert mean.high == pytest.approx(exact.high, abs=0.006)


def test_pairs_are_resampled_together():
    """b = a + 0.1 on every sample: every resample's difference is 0.1, so the interval is that point; resampled
    apart (unpaired) it would be wide, a's spread being large."""
    a = np.random.default_rng(0).random(300)
    ci = stats.paired_bootstrap_mean_diff(a, a + 0.1, n_boot=2000, rng=0)
    assert ci.low == pytest.approx(0.1)
    assert ci.high == pytest.approx(0.1)


def test_seed_averaged_scores():
    """Three seeds' 0/1 outcomes averaged per sample (values k/3): the difference is the mean difference, and
    the interval holds it."""
    g = np.random.default_rng(5)
    ref = (g.random(200) < 0.5).astype(float)
    seeds = np.stack([(g.random(200) < 0.7) for _ in range(3)]).astype(float)
    ci = stats.paired_bootstrap_mean_diff(ref, seeds.mean(axis=0), n_boot=4000, rng=0)
    assert ci.diff == pytest.approx(seeds.mean() - ref.mean())
    assert ci.low < ci.diff < ci.high
    with pytest.raises(ValueError, match="same length"):
        stats.paired_bootstrap_mean_diff(ref, ref[:10])
