"""Paired tests of a candidate against a baseline on the same items, as pure functions.

Both tests are one-sided tests of regression beyond a margin: the null hypothesis is that the
candidate is at most ``margin`` worse than the baseline (delta >= -margin), so a small p-value
is evidence that it regressed by more. With margin 0 the exact test is the one-sided exact
McNemar test.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "PairedTest",
    "binom_cdf",
    "holm",
    "mcnemar_exact",
    "paired_bootstrap",
    "paired_ratio_bootstrap",
]


@dataclass(frozen=True)
class PairedTest:
    """delta = candidate - baseline (mean over the items), its 95% interval and the p-value of
    "no regression beyond the margin"."""

    delta: float
    ci95: tuple[float, float]
    p_value: float
    n: int


def binom_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p), summed exactly in log space (no scipy needed)."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 0.0
    log_p, log_q = math.log(p), math.log1p(-p)
    terms = [
        math.lgamma(n + 1)
        - math.lgamma(i + 1)
        - math.lgamma(n - i + 1)
        + i * log_p
        + (n - i) * log_q
        for i in range(k + 1)
    ]
    top = max(terms)
    return min(1.0, math.exp(top) * math.fsum(math.exp(t - top) for t in terms))


def mcnemar_exact(wins: int, losses: int, n: int, margin: float = 0.0) -> float:
    """One-sided p-value that a right/wrong metric fell by more than ``margin``.

    ``wins``: items the candidate got right and the baseline wrong; ``losses``: the reverse;
    ``n``: all items. Conditional on the d = wins + losses discordant items, a drop of exactly
    ``margin`` means each discordant item is a win with probability (1 - margin * n / d) / 2;
    the p-value is the chance of so few wins. When d <= margin * n the candidate cannot have
    fallen by more than the margin, whatever the discordant items say: p = 1.
    """
    discordant = wins + losses
    if discordant == 0 or n == 0:
        return 1.0
    theta = (1.0 - margin * n / discordant) / 2.0
    if theta <= 0.0:
        return 1.0
    return binom_cdf(wins, discordant, theta)


def _percentile_test(delta: float, resampled: np.ndarray, margin: float, n: int) -> PairedTest:
    """The percentile interval of the resampled deltas and the share of them at or above
    -margin (with the usual +1 so that the p-value is never 0)."""
    low, high = np.percentile(resampled, [2.5, 97.5])
    # A tolerance so that a delta equal to -margin (up to rounding) counts as no regression.
    above = int(np.count_nonzero(resampled >= -margin - 1e-12))
    return PairedTest(
        delta=delta,
        ci95=(float(low), float(high)),
        p_value=(above + 1) / (len(resampled) + 1),
        n=n,
    )


def paired_bootstrap(
    baseline: Sequence[float],
    candidate: Sequence[float],
    margin: float = 0.0,
    resamples: int = 2000,
    seed: int = 0,
) -> PairedTest:
    """The paired percentile bootstrap of the mean difference: items are resampled together,
    so what the two runs share (hard items, easy items) cancels. The p-value is the share of
    resampled means at or above -margin (with the usual +1 so it is never 0)."""
    if len(baseline) != len(candidate):
        raise ValueError("paired values need the same items on both sides")
    diffs = np.asarray(candidate, dtype=float) - np.asarray(baseline, dtype=float)
    n = len(diffs)
    if n == 0:
        return PairedTest(0.0, (0.0, 0.0), 1.0, 0)
    rng = np.random.default_rng(seed)
    means = diffs[rng.integers(0, n, size=(resamples, n))].mean(axis=1)
    return _percentile_test(float(diffs.mean()), means, margin, n)


def _ratio(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    return np.divide(top, bottom, out=np.zeros_like(top, dtype=float), where=bottom != 0)


def paired_ratio_bootstrap(
    baseline: tuple[Sequence[float], Sequence[float]],
    candidate: tuple[Sequence[float], Sequence[float]],
    margin: float = 0.0,
    resamples: int = 2000,
    seed: int = 0,
) -> PairedTest:
    """The paired percentile bootstrap of a ratio of sums (numerators, denominators per item,
    each side): micro F1 is such a ratio, and a mean of per-item F1s is not the figure a run
    reports. Items are resampled together on both sides, as in ``paired_bootstrap``."""
    b_top, b_bottom = (np.asarray(v, dtype=float) for v in baseline)
    c_top, c_bottom = (np.asarray(v, dtype=float) for v in candidate)
    n = len(b_top)
    if not (len(b_bottom) == len(c_top) == len(c_bottom) == n):
        raise ValueError("paired values need the same items on both sides")
    if n == 0:
        return PairedTest(0.0, (0.0, 0.0), 1.0, 0)
    delta = float(
        _ratio(c_top.sum(keepdims=True), c_bottom.sum(keepdims=True))[0]
        - _ratio(b_top.sum(keepdims=True), b_bottom.sum(keepdims=True))[0]
    )
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(resamples, n))
    deltas = _ratio(c_top[idx].sum(axis=1), c_bottom[idx].sum(axis=1)) - _ratio(
        b_top[idx].sum(axis=1), b_bottom[idx].sum(axis=1)
    )
    return _percentile_test(delta, deltas, margin, n)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given: the family-wise error rate
    stays at alpha however many rungs × metrics are tested."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted
