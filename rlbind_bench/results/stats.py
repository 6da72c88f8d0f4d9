"""Statistics for result tables: intervals, paired tests, corruption errors, robustness curves.

Every function works on plain numbers / NumPy arrays so that the leaderboard, the regression gate and
tests share one implementation. Accuracies and errors are fractions in [0, 1], never percent.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

Z95 = 1.959963984540054


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion k/n (NaN, NaN when n == 0)."""
    if n == 0:
        return math.nan, math.nan
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # Exact bounds at the edges (the formula leaves ~1e-17 of rounding there).
    low = 0.0 if k == 0 else max(0.0, centre - half)
    high = 1.0 if k == n else min(1.0, centre + half)
    return low, high


def z_for_alpha(alpha: float) -> float:
    """Two-sided normal quantile z_{1 - alpha/2} (0 for alpha >= 1: intervals shrink to the point estimate)."""
    if not 0 < alpha <= 1:
        raise ValueError(f"alpha must be in (0, 1], got {alpha}")
    if alpha >= 1:
        return 0.0
    from scipy.stats import norm

    return float(norm.ppf(1 - alpha / 2))


def wilson_overlap_p(k_a: int, n_a: int, k_b: int, n_b: int) -> float:
    """The alpha at which the (1 - alpha) Wilson intervals of k_a/n_a and k_b/n_b touch.

    Wilson intervals are nested in their level (the acceptance region |p_hat - p| <= z sqrt(p(1-p)/n) grows
    with z), so the intervals are disjoint exactly for alpha above this value: "non-overlapping (1 - alpha)
    intervals" is "this value < alpha", a p-value that a multiple-comparison correction can take. It is
    conservative (overlap of two intervals is a stricter criterion than a two-sample test). 1 when the two
    proportions are equal, NaN when n_a or n_b is 0, 0 when the intervals stay apart up to z = 40.
    """
    if n_a == 0 or n_b == 0:
        return math.nan
    if k_a / n_a == k_b / n_b:
        return 1.0
    lo_side, hi_side = ((k_a, n_a), (k_b, n_b)) if k_a / n_a < k_b / n_b else ((k_b, n_b), (k_a, n_a))
    from scipy.optimize import brentq
    from scipy.stats import norm

    def gap(z: float) -> float:  # > 0 while the intervals are disjoint; decreasing in z
        return wilson_interval(*hi_side, z)[0] - wilson_interval(*lo_side, z)[1]

    z_max = 40.0
    if gap(z_max) > 0:
        return 0.0
    z_touch = brentq(gap, 0.0, z_max, xtol=1e-12)
    return float(min(1.0, 2 * norm.sf(z_touch)))


# ------------------------------------------------------------------------------ multiple comparisons
CORRECTIONS = {"holm": "Holm (family-wise error rate)", "bh": "Benjamini-Hochberg (false discovery rate)",
               "none": "none (each cell at alpha on its own)"}


def _pvalue_array(p_values) -> np.ndarray:
    p = np.asarray(p_values, dtype=float).ravel()
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError("p-values must be numbers in [0, 1]")
    return p


def holm_adjust(p_values) -> np.ndarray:
    """Holm (1979) step-down adjusted p-values, in the input order.

    With p_(1) <= ... <= p_(m) sorted: adj_(i) = max_{j <= i} min(1, (m - j + 1) p_(j)). Rejecting where
    adj <= alpha controls the probability of any false regression over the m cells at alpha, under any
    dependence between the cells (they share a model and samples, so independence cannot be assumed).
    """
    p = _pvalue_array(p_values)
    m = p.size
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.maximum.accumulate(scaled)
    return out


def bh_adjust(p_values) -> np.ndarray:
    """Benjamini-Hochberg (1995) step-up adjusted p-values, in the input order.

    With p_(1) <= ... <= p_(m) sorted: adj_(i) = min_{j >= i} min(1, m p_(j) / j). Rejecting where
    adj <= alpha bounds the expected fraction of false regressions among the flagged cells by alpha
    (for independent or positively dependent tests); more flags than Holm, weaker guarantee.
    """
    p = _pvalue_array(p_values)
    m = p.size
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, m * p[order] / np.arange(1, m + 1))
    out = np.empty(m)
    out[order] = np.minimum.accumulate(scaled[::-1])[::-1]
    return out


def adjust_pvalues(p_values, method: str) -> np.ndarray:
    """Adjusted p-values by `method`, one of CORRECTIONS: "holm", "bh" or "none" (a copy, unchanged)."""
    if method == "holm":
        return holm_adjust(p_values)
    if method == "bh":
        return bh_adjust(p_values)
    if method == "none":
        return _pvalue_array(p_values).copy()
    raise ValueError(f"unknown correction {method!r} (known: {', '.join(CORRECTIONS)})")


# ------------------------------------------------------------------------------------------ paired tests
@dataclass(frozen=True)
class McNemarResult:
    """Exact McNemar test of paired binary outcomes a, b on the same samples.

    n01: a wrong, b right; n10: a right, b wrong; p_value: two-sided exact p-value.
    """

    n: int
    n01: int
    n10: int
    p_value: float


def _paired_bool(a, b) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=bool).ravel()
    b = np.asarray(b, dtype=bool).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired outcomes need the same length, got {a.size} and {b.size}")
    return a, b


def mcnemar_exact(a, b) -> McNemarResult:
    """Exact (binomial) McNemar test on paired outcomes (McNemar 1947; Edwards 1948 for the exact form).

    Only discordant pairs carry information: with n01 = #(a wrong, b right), n10 = #(a right, b wrong) and
    m = n01 + n10, under H0 (equal accuracy) n01 ~ Binomial(m, 1/2). The two-sided p-value is
    p = min(1, 2 * P[X <= min(n01, n10)]), X ~ Binomial(m, 1/2)  (p = 1 when m = 0).
    This is what statsmodels' ``mcnemar(exact=True)`` returns.
    """
    from scipy.stats import binom

    a, b = _paired_bool(a, b)
    n01 = int(np.count_nonzero(~a & b))
    n10 = int(np.count_nonzero(a & ~b))
    m = n01 + n10
    p = 1.0 if m == 0 else min(1.0, 2.0 * float(binom.cdf(min(n01, n10), m, 0.5)))
    return McNemarResult(n=int(a.size), n01=n01, n10=n10, p_value=p)


@dataclass(frozen=True)
class BootstrapCI:
    """diff = mean(b) - mean(a) on the observed pairs; [low, high] its percentile bootstrap interval."""

    diff: float
    low: float
    high: float
    n_boot: int
    confidence: float


def paired_bootstrap_diff(a, b, n_boot: int = 10_000, confidence: float = 0.95,
                          rng: np.random.Generator | int | None = 0) -> BootstrapCI:
    """Percentile bootstrap CI (Efron & Tibshirani 1993, ch. 13) of the paired accuracy difference.

    Pairs (a_i, b_i) are resampled together, so the CI accounts for the correlation between two models
    scored on the same samples. A resampled mean difference only depends on how many pairs of each kind
    d_i = b_i - a_i in {-1, 0, +1} were drawn, so drawing the counts from Multinomial(n, observed
    frequencies) is exactly equivalent to resampling n indices with replacement - and vectorised in
    O(n_boot) instead of O(n_boot * n). `rng`: a seeded np.random.Generator or a seed.
    """
    a, b = _paired_bool(a, b)
    n = a.size
    if n == 0:
        return BootstrapCI(math.nan, math.nan, math.nan, n_boot, confidence)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    d = b.astype(np.int8) - a.astype(np.int8)
    freq = np.array([np.count_nonzero(d == -1), np.count_nonzero(d == 0), np.count_nonzero(d == 1)]) / n
    counts = gen.multinomial(n, freq, size=n_boot)
    diffs = (counts[:, 2] - counts[:, 0]) / n
    tail = (1 - confidence) / 2
    low, high = np.quantile(diffs, [tail, 1 - tail])
    return BootstrapCI(float(d.mean()), float(low), float(high), n_boot, confidence)


# -------------------------------------------------------------------------------------------- corruptions
def corruption_errors(errors: Mapping[str, Sequence[float]],
                      reference_errors: Mapping[str, Sequence[float]]) -> dict[str, float]:
    """CE_c = sum_s E_{s,c} / sum_s E^ref_{s,c} per corruption c (Hendrycks & Dietterich 2019, ImageNet-C).

    `errors[c]` and `reference_errors[c]`: top-1 errors (1 - accuracy) at each severity s, same order and
    length. The reference is the declared baseline model (AlexNet in ImageNet-C; `--reference` here).
    A corruption the reference does not cover, or where its summed error is 0, gives NaN.
    """
    out = {}
    for c, err in errors.items():
        ref = reference_errors.get(c)
        err = np.asarray(err, dtype=float)
        if ref is None or len(ref) != len(err):
            out[c] = math.nan
            continue
        denom = float(np.sum(ref))
        out[c] = float(np.sum(err)) / denom if denom > 0 else math.nan
    return out


def mean_corruption_error(errors: Mapping[str, Sequence[float]],
                          reference_errors: Mapping[str, Sequence[float]]) -> float:
    """mCE = mean over corruptions c of CE_c (see `corruption_errors`); RobustBench reports the same
    (its per-severity-normalised form equals this ratio of sums). NaN if any CE_c is NaN or none given."""
    ces = list(corruption_errors(errors, reference_errors).values())
    if not ces or any(math.isnan(x) for x in ces):
        return math.nan
    return float(np.mean(ces))


def mean_corruption_accuracy(accuracies: Mapping[str, Sequence[float]]) -> float:
    """Plain mean accuracy over all (corruption, severity) cells, as RobustBench's `corruptions_acc`
    (Croce et al. 2021) averages ImageNet-C's 15 corruptions x 5 severities. NaN when empty."""
    values = [float(v) for accs in accuracies.values() for v in accs]
    return float(np.mean(values)) if values else math.nan


# ------------------------------------------------------------------------------------ robustness curves
def accuracy_eps_auc(eps: Sequence[float], accuracy: Sequence[float], clean_accuracy: float) -> float:
    """Area under the accuracy-vs-eps curve, eps normalised to [0, 1] by the largest eps.

    The curve starts at (0, clean_accuracy); points (eps_i / max eps, acc_i) follow in increasing eps and
    the area is the trapezoid rule: AUC = sum_i (x_{i+1} - x_i) (y_i + y_{i+1}) / 2, in [0, 1]. A model
    whose accuracy never drops scores its clean accuracy. NaN without a positive eps or with NaN inputs.
    (Normalising by the grid's max eps makes the number comparable only between identical eps grids.)
    """
    eps = np.asarray(eps, dtype=float)
    acc = np.asarray(accuracy, dtype=float)
    if eps.shape != acc.shape:
        raise ValueError("eps and accuracy need the same length")
    keep = eps > 0  # eps 0 of an attack is the clean point, which is given separately
    eps, acc = eps[keep], acc[keep]
    if eps.size == 0 or np.isnan(acc).any() or math.isnan(clean_accuracy):
        return math.nan
    if np.unique(eps).size != eps.size:
        raise ValueError("duplicate eps values")
    order = np.argsort(eps)
    x = np.concatenate([[0.0], eps[order] / eps.max()])
    y = np.concatenate([[clean_accuracy], acc[order]])
    return float(np.sum(np.diff(x) * (y[:-1] + y[1:]) / 2))


def paired_bootstrap_mean_diff(a, b, n_boot: int = 10_000, confidence: float = 0.95,
                               rng: np.random.Generator | int | None = 0) -> BootstrapCI:
    """Percentile bootstrap CI of mean(b) - mean(a) for real-valued paired scores (e.g. a sample's accuracy
    averaged over several training seeds of one model, against the same sample's under another): the pairs
    are resampled together, n indices with replacement per draw (`paired_bootstrap_diff` is the faster exact
    form for 0/1 outcomes)."""
    a = np.asarray(a, dtype=float).ravel()
    b = np.asarray(b, dtype=float).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired scores need the same length, got {a.size} and {b.size}")
    if a.size == 0:
        return BootstrapCI(math.nan, math.nan, math.nan, n_boot, confidence)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    d = b - a
    idx = gen.integers(0, d.size, size=(n_boot, d.size))
    diffs = d[idx].mean(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(diffs, [tail, 1 - tail])
    return BootstrapCI(float(d.mean()), float(low), float(high), n_boot, confidence)
