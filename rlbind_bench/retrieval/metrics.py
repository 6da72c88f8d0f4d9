"""Retrieval metrics per query (rank of the first relevant item, average precision, R@K) and their summaries.

Ties are broken against the query: among gallery items of equal score, the non-relevant ones rank first. An
attack that collapses every embedding onto one point therefore scores as the failure it is, not as a perfect
retrieval (an optimistic or index-order tie break would report R@1 = 1 for a constant model).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rlbind_bench.results.stats import Z95, wilson_interval

KS = (1, 5, 10)


@dataclass(frozen=True)
class QueryRanks:
    first_rank: np.ndarray  # [Q] int, 1-based rank of the best-ranked relevant item
    ap: np.ndarray  # [Q] float, average precision over all relevant items
    n_relevant: np.ndarray  # [Q] int

    def hits(self, k: int) -> np.ndarray:
        return self.first_rank <= k


def rank_queries(scores: np.ndarray, relevant: np.ndarray) -> QueryRanks:
    """scores [Q, G] (higher: more similar), relevant [Q, G] bool; every query needs one relevant item."""
    scores = np.asarray(scores, dtype=np.float64)
    relevant = np.asarray(relevant, dtype=bool)
    if scores.shape != relevant.shape or scores.ndim != 2:
        raise ValueError(f"scores {scores.shape} and relevant {relevant.shape} must be the same [Q, G] shape")
    n_rel = relevant.sum(1)
    if (n_rel == 0).any():
        raise ValueError(f"query {int(np.flatnonzero(n_rel == 0)[0])} has no relevant gallery item")
    first = np.empty(len(scores), dtype=np.int64)
    ap = np.empty(len(scores), dtype=np.float64)
    for q, (s, r) in enumerate(zip(scores, relevant, strict=True)):
        order = np.lexsort((r, -s))  # score descending; on ties, non-relevant (False) first
        positions = np.flatnonzero(r[order]) + 1  # 1-based ranks of the relevant items
        first[q] = positions[0]
        ap[q] = float(np.mean(np.arange(1, len(positions) + 1) / positions))
    return QueryRanks(first, ap, n_rel.astype(np.int64))


def mean_interval(values: np.ndarray, z: float = Z95) -> tuple[float, float]:
    """Normal-approximation interval of a mean of values in [0, 1], clipped to [0, 1] (NaN for n < 2)."""
    n = len(values)
    if n < 2:
        return math.nan, math.nan
    m, half = float(np.mean(values)), z * float(np.std(values, ddof=1)) / math.sqrt(n)
    return max(0.0, m - half), min(1.0, m + half)


def summarise_ranks(first_rank: np.ndarray, ap: np.ndarray) -> dict[str, float]:
    """R@K with 95% Wilson intervals over queries, mAP with a normal-approximation 95% interval."""
    first_rank, ap = np.asarray(first_rank), np.asarray(ap, dtype=np.float64)
    out: dict[str, float] = {"n_queries": len(first_rank)}
    for k in KS:
        hits = int((first_rank <= k).sum())
        lo, hi = wilson_interval(hits, len(first_rank))
        out |= {f"r{k}": hits / max(len(first_rank), 1), f"r{k}_low": lo, f"r{k}_high": hi}
    lo, hi = mean_interval(ap)
    return out | {"map": float(ap.mean()) if len(ap) else math.nan, "map_low": lo, "map_high": hi}
