"""Calibration of label scores: the corrections as functions, on scores with a known bias."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from rung.models.base import Prediction
from rung.tasks.baselines import majority_baseline, random_baseline
from rung.tasks.calibration import (
    contextual_calibration,
    cross_validated_accuracy,
    fitted_calibration,
    log_scores,
    recalibrate,
)
from rung.tasks.verbalizers import candidate_verbalizers, check_verbalizer

LABELS = ("negative", "neutral", "positive")


def biased(n: int, seed: int) -> tuple[list[dict[str, float]], list[str]]:
    """Scores that carry the gold label's signal under a strong pull towards 'negative' (what
    SmolLM2-135M does on financial news): raw argmax is nearly always 'negative'."""
    rng = np.random.default_rng(seed)
    gold = [LABELS[i] for i in rng.integers(0, 3, size=n)]
    scores = []
    for g in gold:
        logits = rng.normal(0, 0.5, size=3) + np.array([3.0, 0.0, 0.5])
        logits[LABELS.index(g)] += 1.5
        p = np.exp(logits) / np.exp(logits).sum()
        scores.append(dict(zip(LABELS, p.tolist(), strict=True)))
    return scores, gold


def accuracy(preds: list[Prediction], gold: list[str]) -> float:
    return sum(p.label == g for p, g in zip(preds, gold, strict=True)) / len(gold)


def as_predictions(scores: list[dict[str, float]]) -> list[Prediction]:
    return [Prediction(label=max(s, key=s.__getitem__), scores=s) for s in scores]


def test_contextual_calibration_removes_a_constant_bias() -> None:
    scores, gold = biased(300, 0)
    raw = as_predictions(scores)
    # content-free answers carry the bias and no signal
    bias = np.exp([3.0, 0.0, 0.5]) / np.exp([3.0, 0.0, 0.5]).sum()
    cal = contextual_calibration([dict(zip(LABELS, bias.tolist(), strict=True))] * 3, LABELS)
    fixed = [recalibrate(p, cal) for p in raw]
    assert accuracy(raw, gold) < 0.45
    assert accuracy(fixed, gold) > 0.7
    assert all(abs(sum(p.scores.values()) - 1) < 1e-9 for p in fixed)
    assert all(p.confidence == p.scores[p.label] for p in fixed if p.label)
    assert cal.to_json()["content_free"]["negative"] == pytest.approx(bias[0])


def test_fitted_calibration_is_scikit_learns_logistic_regression() -> None:
    train, train_gold = biased(200, 1)
    test, test_gold = biased(200, 2)
    cal = fitted_calibration(train, train_gold, LABELS)
    reference = LogisticRegression(C=1.0, max_iter=2000).fit(
        log_scores(train, LABELS), [LABELS.index(g) for g in train_gold]
    )
    expected = reference.predict_proba(log_scores(test, LABELS))
    got = np.array([[cal.apply(s)[lab] for lab in LABELS] for s in test])
    assert np.allclose(got, expected, atol=1e-9)
    fixed = [recalibrate(p, cal) for p in as_predictions(test)]
    assert accuracy(fixed, test_gold) > accuracy(as_predictions(test), test_gold) + 0.3


def test_two_labels_get_the_regressions_sigmoid() -> None:
    # scikit-learn fits one row of weights for two classes (binary sentiment, SST-2)
    two = ("negative", "positive")
    rng = np.random.default_rng(3)
    gold = [two[i] for i in rng.integers(0, 2, size=120)]
    scores = []
    for g in gold:
        z = rng.normal(0, 0.5) + 2.0 - (1.2 if g == "positive" else 0.0)
        p = 1 / (1 + np.exp(-z))
        scores.append({"negative": float(p), "positive": float(1 - p)})
    cal = fitted_calibration(scores, gold, two)
    reference = LogisticRegression(C=1.0, max_iter=2000).fit(
        log_scores(scores, two), [two.index(g) for g in gold]
    )
    got = np.array([[cal.apply(s)[lab] for lab in two] for s in scores])
    assert np.allclose(got, reference.predict_proba(log_scores(scores, two)), atol=1e-9)
    assert cross_validated_accuracy(scores, gold, two) > 0.7


def test_fitting_needs_every_label() -> None:
    scores, _ = biased(10, 3)
    with pytest.raises(ValueError, match="every label"):
        fitted_calibration(scores, ["negative"] * 5 + ["positive"] * 5, LABELS)


def test_an_answer_without_scores_is_kept() -> None:
    cal = contextual_calibration([{"negative": 0.5, "neutral": 0.2, "positive": 0.3}], LABELS)
    bare = Prediction(label="neutral")
    assert recalibrate(bare, cal) is bare


def test_cross_validation_tells_a_signal_from_noise() -> None:
    scores, gold = biased(150, 4)
    rng = np.random.default_rng(5)
    noise = [dict(zip(LABELS, (p / p.sum()).tolist(), strict=True)) for p in rng.random((150, 3))]
    assert cross_validated_accuracy(scores, gold, LABELS) > 0.7
    assert cross_validated_accuracy(noise, gold, LABELS) < 0.5


def test_verbalizer_candidates() -> None:
    sentiment = candidate_verbalizers(LABELS)
    assert sentiment[0] == {lab: lab for lab in LABELS}
    assert {"negative": "bad", "neutral": "neutral", "positive": "good"} in sentiment
    intents = candidate_verbalizers(["card_arrival", "top-up"])
    assert intents == [
        {"card_arrival": "card_arrival", "top-up": "top-up"},
        {"card_arrival": "card arrival", "top-up": "top up"},
        {"card_arrival": "Card arrival", "top-up": "Top up"},
    ]
    assert check_verbalizer({"negative": "bad", "neutral": "bad", "positive": "ok"}, LABELS)
    assert check_verbalizer({"negative": "bad"}, LABELS) == "it gives no word for neutral, positive"


def test_baselines() -> None:
    gold = ["neutral"] * 60 + ["positive"] * 25 + ["negative"] * 15
    train = ["neutral"] * 6 + ["positive"] * 3 + ["negative"] * 1
    majority = majority_baseline(train, gold, LABELS)
    assert majority.rule == "always 'neutral'"
    assert majority.accuracy.value == pytest.approx(0.6)
    low, high = majority.accuracy.ci95
    assert low < 0.6 < high
    guess = random_baseline(gold, LABELS)
    assert guess.accuracy.value == pytest.approx(1 / 3)
    low, high = guess.accuracy.ci95
    assert 0.2 < low < 1 / 3 < high < 0.47
    assert 0.2 < guess.macro_f1.value < 0.35
