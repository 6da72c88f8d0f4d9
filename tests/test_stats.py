"""results/stats.py against independent references: scipy's binomial test and Wilson interval, scipy's
Benjamini-Hochberg, and Holm's step-down procedure written here from its definition."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.stats import binomtest, false_discovery_control

from rlbind_bench.results.stats import (
    adjust_pvalues,
    bh_adjust,
    holm_adjust,
    mcnemar_exact,
    wilson_interval,
    wilson_overlap_p,
    z_for_alpha,
)

NS = (1, 2, 3, 5, 10, 37, 100)
GRID = [(k, n) for n in NS for k in range(n + 1)]  # every k, so k = 0 and k = n for each n


@pytest.mark.parametrize("alpha", [0.05, 0.01, 0.2])
def test_wilson_matches_scipy(alpha):
    """Wilson interval equals scipy's binomtest(k, n).proportion_ci("wilson") for every k in 0..n, n >= 1.

    Caught: `low = 0.0 if k == 0` changed to `if k == 1` (the k = 0 edge then leaves rounding noise and
    the k = 1 bound is wrong); `denom = 1 + z * z / n` changed to `1 + z / n`."""
    z = z_for_alpha(alpha)
    for k, n in GRID:
        ref = binomtest(k, n).proportion_ci(confidence_level=1 - alpha, method="wilson")
        lo, hi = wilson_interval(k, n, z)
        assert lo == pytest.approx(ref.low, abs=1e-12), (k, n)
        assert hi == pytest.approx(ref.high, abs=1e-12), (k, n)
        assert 0.0 <= lo <= k / n <= hi <= 1.0
    assert wilson_interval(0, 7)[0] == 0.0
    assert wilson_interval(7, 7)[1] == 1.0
    assert all(math.isnan(x) for x in wilson_interval(0, 0))


def _pairs(n01: int, n10: int, both_right: int, both_wrong: int) -> tuple[list[bool], list[bool]]:
    a = [False] * n01 + [True] * n10 + [True] * both_right + [False] * both_wrong
    b = [True] * n01 + [False] * n10 + [True] * both_right + [False] * both_wrong
    return a, b


def test_mcnemar_matches_binomtest_on_discordant_pairs():
    """Exact McNemar p equals scipy's two-sided binomtest(n01, n01 + n10, 1/2), over a grid with m = 1,
    one-sided splits (0, m) and (m, 0), ties and concordant pairs; 1 when there is no discordant pair.

    Caught: `min(n01, n10)` changed to `max(n01, n10)` (p > 1 clipped to 1 everywhere), and the counts
    swapped (`n01 = ... a & ~b`), which the n01/n10 assertions catch even though p is symmetric."""
    for n01, n10, conc in itertools.product(range(8), range(8), (0, 3)):
        a, b = _pairs(n01, n10, conc, conc)
        res = mcnemar_exact(a, b)
        assert (res.n01, res.n10, res.n) == (n01, n10, n01 + n10 + 2 * conc)
        m = n01 + n10
        ref = 1.0 if m == 0 else binomtest(n01, m, 0.5).pvalue
        assert res.p_value == pytest.approx(ref, rel=1e-12, abs=1e-300), (n01, n10)
    assert mcnemar_exact([], []).p_value == 1.0


def test_wilson_overlap_p_is_where_the_intervals_touch():
    """wilson_overlap_p(k_a, n_a, k_b, n_b) < alpha exactly when the two (1 - alpha) Wilson intervals are
    disjoint (checked at levels on either side of it), and at its own level the intervals touch.

    Caught: returning the one-sided `norm.sf(z_touch)` instead of `2 * norm.sf(z_touch)` (disjointness at
    alpha and p < alpha disagree), and the sides swapped in `gap` (brentq has no sign change: ValueError)."""
    cases = [(0, 5, 5, 5), (3, 10, 9, 10), (1, 1, 0, 1), (20, 64, 40, 64), (50, 100, 51, 100), (0, 30, 1, 30),
             (12, 12, 6, 12), (7, 40, 7, 40)]
    for k_a, n_a, k_b, n_b in cases:
        p = wilson_overlap_p(k_a, n_a, k_b, n_b)
        assert p == wilson_overlap_p(k_b, n_b, k_a, n_a)
        if k_a / n_a == k_b / n_b:
            assert p == 1.0
            continue
        assert 0 < p < 1
        for alpha in (p * 0.9, p * 1.1):
            if not 0 < alpha <= 1:
                continue
            (a_lo, a_hi), (b_lo, b_hi) = (wilson_interval(k_a, n_a, z_for_alpha(alpha)),
                                          wilson_interval(k_b, n_b, z_for_alpha(alpha)))
            disjoint = a_hi < b_lo or b_hi < a_lo
            assert disjoint == (p < alpha), (k_a, n_a, k_b, n_b, alpha)
        (a_lo, a_hi), (b_lo, b_hi) = wilson_interval(k_a, n_a, z_for_alpha(p)), wilson_interval(k_b, n_b, z_for_alpha(p))
        assert min(abs(a_hi - b_lo), abs(b_hi - a_lo)) < 1e-9
    assert math.isnan(wilson_overlap_p(0, 0, 1, 2))
    assert wilson_overlap_p(0, 10**9, 10**9, 10**9) == 0.0


def _holm_reject(p: np.ndarray, alpha: float) -> np.ndarray:
    """Holm's procedure as stated in Holm (1979): walk the p-values upwards, reject H_(i) while
    p_(i) <= alpha / (m - i + 1), stop at the first that is not."""
    m = len(p)
    reject = np.zeros(m, dtype=bool)
    for rank, idx in enumerate(sorted(range(m), key=lambda i: p[i]), start=1):
        if p[idx] > alpha / (m - rank + 1):
            break
        reject[idx] = True
    return reject


def _pvalue_sets():
    rng = np.random.default_rng(0)
    yield np.array([0.01, 0.04, 0.03, 0.005])
    yield np.array([0.5])
    yield np.array([0.0, 1.0, 0.02, 0.02, 0.02])  # ties, both ends
    for m in (2, 7, 30, 100):
        yield rng.uniform(0, 1, m) ** 3  # many small ones, as when some cells really moved
        yield np.concatenate([rng.uniform(0, 0.01, m // 3), rng.uniform(0, 1, m - m // 3)])


def test_holm_matches_the_step_down_procedure():
    """{holm_adjust(p) <= alpha} is the set Holm's step-down procedure rejects, at levels away from the
    p-values' thresholds, for sets with ties, 0 and 1; adjusted values are >= raw and <= 1.

    Caught: the running maximum dropped (`out[order] = scaled`: a later hypothesis rejected after an
    earlier one was kept), and the multiplier `m - np.arange(m)` replaced by `m` (Bonferroni: fewer
    rejections than Holm)."""
    alphas = np.linspace(0.001, 0.3, 61)
    for p in _pvalue_sets():
        adj = holm_adjust(p)
        assert (adj >= p - 1e-15).all()
        assert (adj <= 1).all()
        for alpha in alphas:
            np.testing.assert_array_equal(adj <= alpha, _holm_reject(p, alpha), err_msg=f"{p} at {alpha}")


def test_bh_matches_scipy():
    """bh_adjust equals scipy.stats.false_discovery_control(p, method="bh").

    Caught: the step-up minimum taken from the front (`np.minimum.accumulate(scaled)` without the
    reversals), and `/ np.arange(1, m + 1)` off by one (`np.arange(m) + 2`)."""
    for p in _pvalue_sets():
        np.testing.assert_allclose(bh_adjust(p), false_discovery_control(p, method="bh"), rtol=1e-12, atol=0)


def test_adjust_dispatch_and_refusals():
    """adjust_pvalues routes holm/bh/none and refuses NaN, out-of-range p-values and unknown methods.

    Caught: "none" returning the Holm values (the gate's --correction none would still correct)."""
    p = np.array([0.01, 0.02, 0.3])
    np.testing.assert_array_equal(adjust_pvalues(p, "holm"), holm_adjust(p))
    np.testing.assert_array_equal(adjust_pvalues(p, "bh"), bh_adjust(p))
    np.testing.assert_array_equal(adjust_pvalues(p, "none"), p)
    assert adjust_pvalues([], "holm").size == 0
    for bad in ([math.nan], [1.5], [-0.1]):
        with pytest.raises(ValueError, match=r"p-values must be numbers in \[0, 1\]"):
            holm_adjust(bad)
    with pytest.raises(ValueError, match="unknown correction"):
        adjust_pvalues(p, "bonferroni")
