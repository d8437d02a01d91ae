"""Rank agreement between two measurements of the same configs (the fidelity check's statistics).

Pure numpy: Spearman's rho and Kendall's tau-b (ties handled as scipy does), percentile bootstrap
intervals over configs, top-k overlap, and the regret of choosing by the cheap measurement.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = ["bootstrap_ci", "kendall", "ranks", "regret", "spearman", "top_k_overlap"]


def ranks(x: Sequence[float]) -> np.ndarray:
    """Ranks 1..n, ties sharing their average rank (scipy.stats.rankdata's ``average``)."""
    a = np.asarray(x, dtype=float)
    r = np.empty(len(a))
    r[np.argsort(a, kind="mergesort")] = np.arange(1, len(a) + 1)
    _, inv = np.unique(a, return_inverse=True)
    return (np.bincount(inv, r) / np.bincount(inv))[inv]


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rho: Pearson correlation of the ranks; NaN when either side is constant."""
    rx, ry = ranks(x), ranks(y)
    if len(rx) < 2 or rx.std() == 0 or ry.std() == 0:
        return math.nan
    return float(np.corrcoef(rx, ry)[0, 1])


def kendall(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b: (concordant - discordant) / sqrt(pairs untied in x * pairs untied in y)."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    i, j = np.triu_indices(len(a), k=1)
    dx, dy = np.sign(a[i] - a[j]), np.sign(b[i] - b[j])
    n1, n2 = np.count_nonzero(dx), np.count_nonzero(dy)
    if n1 == 0 or n2 == 0:
        return math.nan
    return float(np.sum(dx * dy) / math.sqrt(n1 * n2))


def bootstrap_ci(
    x: Sequence[float],
    y: Sequence[float],
    stat: Callable[[Any, Any], float],
    *,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``stat(x, y)`` resampling (x, y) pairs; resamples where the
    statistic is undefined (all tied) are dropped. NaNs when fewer than 3 pairs."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(a) < 3:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(a), size=(n_boot, len(a)))
    vals = np.array([stat(a[k], b[k]) for k in idx])
    vals = vals[~np.isnan(vals)]
    if len(vals) == 0:
        return math.nan, math.nan
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(vals, [tail, 100 - tail])
    return float(lo), float(hi)


def top_k_overlap(low: Sequence[float], high: Sequence[float], k: int) -> float:
    """Share of the ``k`` best by ``high`` that are also among the ``k`` best by ``low`` (ties: first listed)."""
    k = min(k, len(low))
    if k <= 0:
        return math.nan
    top = lambda v: set(np.argsort(-np.asarray(v, dtype=float), kind="mergesort")[:k].tolist())  # noqa: E731
    return len(top(low) & top(high)) / k


def regret(low: Sequence[float], high: Sequence[float], k: int = 1) -> float:
    """High-fidelity score lost by keeping the best of the ``k`` configs that ``low`` ranks first,
    instead of the best config overall: ``max(high) - max(high[top k by low])``."""
    h = np.asarray(high, dtype=float)
    chosen = np.argsort(-np.asarray(low, dtype=float), kind="mergesort")[: max(1, k)]
    return float(h.max() - h[chosen].max())
