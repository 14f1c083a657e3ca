"""Classification metrics as pure functions over label lists, with bootstrap intervals.

A prediction of ``None`` (a generative rung answered something that is not a label) counts as
wrong everywhere: it matches no gold label and is no class's true positive.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "ClassScores",
    "Estimate",
    "accuracy",
    "bootstrap_ci",
    "bootstrap_mean",
    "confusion_matrix",
    "macro_f1",
    "per_class",
    "percentile",
]

IntArray = NDArray[np.int64]


@dataclass(frozen=True)
class Estimate:
    value: float
    ci95: tuple[float, float]


@dataclass(frozen=True)
class ClassScores:
    precision: float
    recall: float
    f1: float
    support: int


def _encode(
    gold: Sequence[str], pred: Sequence[str | None], labels: Sequence[str]
) -> tuple[IntArray, IntArray]:
    index = {lab: i for i, lab in enumerate(labels)}
    g = np.array([index[x] for x in gold], dtype=np.int64)
    # -1 stands for "no valid label": it never equals a gold index.
    p = np.array([index.get(x, -1) if x is not None else -1 for x in pred], dtype=np.int64)
    return g, p


def confusion_matrix(
    gold: Sequence[str], pred: Sequence[str | None], labels: Sequence[str]
) -> list[list[int]]:
    """Rows are gold labels, columns predicted labels, plus a last column for invalid answers."""
    g, p = _encode(gold, pred, labels)
    k = len(labels)
    m = np.zeros((k, k + 1), dtype=np.int64)
    np.add.at(m, (g, np.where(p < 0, k, p)), 1)
    return m.tolist()


def _f1_parts(
    g: IntArray, p: IntArray, k: int
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], IntArray]:
    tp = np.bincount(g[g == p], minlength=k)[:k].astype(np.float64)
    pred_count = np.bincount(p[p >= 0], minlength=k)[:k].astype(np.float64)
    support = np.bincount(g, minlength=k)[:k]
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(pred_count > 0, tp / pred_count, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return precision, recall, f1, support


def _macro_f1_encoded(g: IntArray, p: IntArray, k: int) -> float:
    _, _, f1, support = _f1_parts(g, p, k)
    # Macro over the labels present in the gold sample, as scikit-learn does when labels= is
    # the gold label set: a label absent from the test set would otherwise add a 0 and drag
    # the average down for reasons that have nothing to do with the rung.
    present = support > 0
    return float(f1[present].mean()) if present.any() else 0.0


def accuracy(gold: Sequence[str], pred: Sequence[str | None], labels: Sequence[str]) -> float:
    g, p = _encode(gold, pred, labels)
    return float((g == p).mean()) if len(g) else 0.0


def macro_f1(gold: Sequence[str], pred: Sequence[str | None], labels: Sequence[str]) -> float:
    g, p = _encode(gold, pred, labels)
    return _macro_f1_encoded(g, p, len(labels))


def per_class(
    gold: Sequence[str], pred: Sequence[str | None], labels: Sequence[str]
) -> dict[str, ClassScores]:
    g, p = _encode(gold, pred, labels)
    precision, recall, f1, support = _f1_parts(g, p, len(labels))
    return {
        lab: ClassScores(float(precision[i]), float(recall[i]), float(f1[i]), int(support[i]))
        for i, lab in enumerate(labels)
    }


def bootstrap_ci(
    gold: Sequence[str],
    pred: Sequence[str | None],
    labels: Sequence[str],
    metric: str,
    *,
    resamples: int = 1000,
    seed: int = 0,
) -> Estimate:
    """Point value and percentile-bootstrap 95% interval of ``accuracy`` or ``macro_f1``.

    Resampling examples with replacement keeps the pairing of gold and prediction, so the
    interval reflects how much the figure would move on another test sample of the same size."""
    g, p = _encode(gold, pred, labels)
    k = len(labels)
    fn: Callable[[IntArray, IntArray], float]
    if metric == "accuracy":
        fn = lambda a, b: float((a == b).mean())  # noqa: E731
    elif metric == "macro_f1":
        fn = lambda a, b: _macro_f1_encoded(a, b, k)  # noqa: E731
    else:
        raise ValueError(f"unknown metric {metric!r}")
    n = len(g)
    if n == 0:
        return Estimate(0.0, (0.0, 0.0))
    if metric == "accuracy":
        return bootstrap_mean((g == p).astype(np.float64), resamples=resamples, seed=seed)
    value = fn(g, p)
    idx = _resample(n, resamples, seed)
    stats = np.array([fn(g[row], p[row]) for row in idx])
    low, high = np.percentile(stats, [2.5, 97.5])
    return Estimate(value, (float(low), float(high)))


def _resample(n: int, resamples: int, seed: int) -> IntArray:
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def bootstrap_mean(
    values: Sequence[float] | NDArray[np.float64], *, resamples: int = 1000, seed: int = 0
) -> Estimate:
    """Mean and percentile-bootstrap 95% interval of per-example scores (1/0 correctness for
    accuracy, a per-query recall or reciprocal rank for retrieval)."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) == 0:
        return Estimate(0.0, (0.0, 0.0))
    stats = v[_resample(len(v), resamples, seed)].mean(axis=1)
    low, high = np.percentile(stats, [2.5, 97.5])
    return Estimate(float(v.mean()), (float(low), float(high)))


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default), 0.0 for no values."""
    if not values:
        return 0.0
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))
