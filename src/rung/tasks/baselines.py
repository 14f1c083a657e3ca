"""What guessing scores on a test set: the rows a report prints beside the rungs so that a
rung no better than guessing shows as such (and ``rung advise`` never recommends it)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rung.tasks import metrics

__all__ = ["Baseline", "majority_baseline", "random_baseline"]


@dataclass(frozen=True)
class Baseline:
    name: str
    #: how it answers, in a few words
    rule: str
    accuracy: metrics.Estimate
    macro_f1: metrics.Estimate


def majority_baseline(
    train_labels: Sequence[str],
    gold: Sequence[str],
    labels: Sequence[str],
    *,
    resamples: int = 1000,
    seed: int = 0,
) -> Baseline:
    """Always the label most frequent in the training split (the test split's when there is no
    training split), with the same bootstrap intervals as the rungs."""
    counts = Counter(train_labels or gold)
    # ties go to the label listed first, so the baseline does not depend on dict order
    top = max(labels, key=lambda lab: (counts[lab], -list(labels).index(lab)))
    pred = [top] * len(gold)
    return Baseline(
        name="majority class",
        rule=f"always {top!r}",
        accuracy=metrics.bootstrap_ci(
            gold, pred, labels, "accuracy", resamples=resamples, seed=seed
        ),
        macro_f1=metrics.bootstrap_ci(
            gold, pred, labels, "macro_f1", resamples=resamples, seed=seed
        ),
    )


def random_baseline(
    gold: Sequence[str], labels: Sequence[str], *, resamples: int = 1000, seed: int = 0
) -> Baseline:
    """A label drawn uniformly at random: expected accuracy 1/k; the interval is where the
    accuracy (and macro-F1) of one such guesser falls on this test set, over ``resamples`` draws."""
    rng = np.random.default_rng(seed)
    k = len(labels)
    draws = rng.integers(0, k, size=(resamples, len(gold)))
    accs = []
    f1s = []
    for row in draws:
        pred = [labels[i] for i in row]
        accs.append(metrics.accuracy(gold, pred, labels))
        f1s.append(metrics.macro_f1(gold, pred, labels))
    support = np.array([sum(1 for g in gold if g == lab) for lab in labels], dtype=np.float64)
    n = max(len(gold), 1)
    # Expected per-class F1 of uniform guessing: precision = share of the class, recall = 1/k.
    share = support / n
    f1 = np.where(share > 0, 2 * share * (1 / k) / (share + 1 / k), 0.0)
    return Baseline(
        name="random",
        rule=f"uniform over {k} labels",
        accuracy=metrics.Estimate(1 / k, _interval(accs)),
        macro_f1=metrics.Estimate(float(f1.mean()), _interval(f1s)),
    )


def _interval(values: Sequence[float]) -> tuple[float, float]:
    low, high = np.percentile(np.asarray(values, dtype=np.float64), [2.5, 97.5])
    return float(low), float(high)
