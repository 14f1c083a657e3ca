from __future__ import annotations

import random

import pytest
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

from rung.tasks import metrics

LABELS = ["a", "b", "c"]


def _sample(n: int, seed: int) -> tuple[list[str], list[str | None]]:
    rng = random.Random(seed)
    gold = [rng.choice(LABELS) for _ in range(n)]
    pred: list[str | None] = [
        g if rng.random() < 0.7 else rng.choice([*LABELS, None]) for g in gold
    ]
    return gold, pred


@pytest.mark.parametrize("seed", range(5))
def test_agrees_with_scikit_learn(seed: int) -> None:
    gold, pred = _sample(300, seed)
    sk_pred = [p if p is not None else "(invalid)" for p in pred]
    assert metrics.accuracy(gold, pred, LABELS) == pytest.approx(accuracy_score(gold, sk_pred))
    assert metrics.macro_f1(gold, pred, LABELS) == pytest.approx(
        f1_score(gold, sk_pred, labels=LABELS, average="macro")
    )
    p, r, f, s = precision_recall_fscore_support(gold, sk_pred, labels=LABELS, zero_division=0)
    per = metrics.per_class(gold, pred, LABELS)
    for i, lab in enumerate(LABELS):
        assert per[lab].precision == pytest.approx(p[i])
        assert per[lab].recall == pytest.approx(r[i])
        assert per[lab].f1 == pytest.approx(f[i])
        assert per[lab].support == s[i]
    cm = metrics.confusion_matrix(gold, pred, LABELS)
    sk_cm = confusion_matrix(gold, sk_pred, labels=[*LABELS, "(invalid)"])
    assert [row for row in cm] == sk_cm[:3].tolist()


def test_bootstrap_interval_contains_value_and_narrows_with_n() -> None:
    small = metrics.bootstrap_ci(*_sample(50, 1), LABELS, "accuracy", resamples=1000)
    large = metrics.bootstrap_ci(*_sample(2000, 1), LABELS, "accuracy", resamples=1000)
    for est in (small, large):
        assert est.ci95[0] <= est.value <= est.ci95[1]
    assert (large.ci95[1] - large.ci95[0]) < (small.ci95[1] - small.ci95[0]) / 3
    # for n=2000 at p~0.77 the normal approximation gives +-1.96*sqrt(p(1-p)/n) ~ 0.018
    half = (large.ci95[1] - large.ci95[0]) / 2
    assert 0.012 < half < 0.025


def test_bootstrap_macro_f1_and_determinism() -> None:
    gold, pred = _sample(200, 2)
    one = metrics.bootstrap_ci(gold, pred, LABELS, "macro_f1", resamples=300, seed=7)
    two = metrics.bootstrap_ci(gold, pred, LABELS, "macro_f1", resamples=300, seed=7)
    assert one == two
    assert one.ci95[0] < one.value < one.ci95[1]


def test_invalid_answers_count_as_wrong() -> None:
    assert metrics.accuracy(["a", "b"], [None, "b"], LABELS) == 0.5
    assert metrics.confusion_matrix(["a", "b"], [None, "b"], LABELS)[0] == [0, 0, 0, 1]


def test_percentile() -> None:
    assert metrics.percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert metrics.percentile([], 95) == 0.0
