"""Correcting the label bias of generative classifiers: pure functions over label scores.

A small language model asked to pick a label leans towards some labels whatever the text says
(towards the first label listed, the last one shown, or a word it saw more often in training):
SmolLM2-135M with two shots per label answers "negative" for most financial news sentences.
Its scores still carry the signal; what is off is their scale per label. Two corrections:

* **contextual** (Zhao et al. 2021, "Calibrate before use"): ask the same prompt with
  content-free texts ("N/A", "", "[MASK]"), take the mean probability of each label there as
  the model's bias, and divide each answer's probabilities by it;
* **fitted**: a multinomial logistic regression from the log-probabilities of the labels to the
  gold label, fitted on examples of the training split (never the test split). It learns the
  bias and how much each label's score is worth; on a few dozen examples per label it is the
  stronger of the two.

Both are functions of the scores alone, so they apply to any backend that scores every label
(llama.cpp, transformers, an API with log-probabilities); a rung without scores is left as it is.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from rung.models.base import Prediction

__all__ = [
    "CONTENT_FREE_TEXTS",
    "Calibration",
    "CalibrationMethod",
    "can_fit",
    "clearly_better",
    "contextual_calibration",
    "cross_validated_accuracy",
    "cross_validated_correct",
    "fitted_calibration",
    "has_scores",
    "no_calibration",
    "recalibrate",
]

CalibrationMethod = Literal["none", "contextual", "fitted"]
#: texts without content, asked with the task's prompt to read a model's label bias
CONTENT_FREE_TEXTS = ("N/A", "", "[MASK]")
#: the least probability a score is taken as (a label scored 0 would make its log infinite)
FLOOR = 1e-9
FloatArray = NDArray[np.float64]


def has_scores(prediction: Prediction, labels: Sequence[str]) -> bool:
    """Whether the prediction scores every label (what calibration needs)."""
    return all(lab in prediction.scores for lab in labels)


def log_scores(scores: Sequence[Mapping[str, float]], labels: Sequence[str]) -> FloatArray:
    """An (examples, labels) array of log-probabilities, renormalised over the labels."""
    p = np.array([[max(float(s[lab]), FLOOR) for lab in labels] for s in scores], dtype=np.float64)
    p /= p.sum(axis=1, keepdims=True)
    return np.asarray(np.log(p), dtype=np.float64)


def _softmax(z: FloatArray) -> FloatArray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=1, keepdims=True), dtype=np.float64)


@dataclass(frozen=True)
class Calibration:
    """A correction of label scores, as fitted; ``apply`` maps one answer's scores to
    calibrated ones. ``weights`` is (labels × labels) and ``bias`` (labels) so that calibrated
    log-odds = log_scores @ weights.T + bias: identity weights for contextual calibration."""

    method: CalibrationMethod
    labels: tuple[str, ...]
    weights: tuple[tuple[float, ...], ...] = ()
    bias: tuple[float, ...] = ()
    #: how it was fitted, for the run record: examples used, content-free texts, a reason
    detail: dict[str, Any] = field(default_factory=dict)

    def transform(self, logp: FloatArray) -> FloatArray:
        if self.method == "none":
            return _softmax(logp)
        w = np.array(self.weights, dtype=np.float64)
        b = np.array(self.bias, dtype=np.float64)
        return _softmax(logp @ w.T + b)

    def apply(self, scores: Mapping[str, float]) -> dict[str, float]:
        row = self.transform(log_scores([scores], self.labels))[0]
        return {lab: float(v) for lab, v in zip(self.labels, row, strict=True)}

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "weights": [list(r) for r in self.weights],
            "bias": list(self.bias),
            **self.detail,
        }


def no_calibration(labels: Sequence[str], reason: str) -> Calibration:
    return Calibration("none", tuple(labels), detail={"reason": reason})


def contextual_calibration(
    content_free: Sequence[Mapping[str, float]], labels: Sequence[str]
) -> Calibration:
    """Divide by the mean probability each label gets on content-free texts (a shift of the
    log-probabilities, the same for every answer)."""
    p_cf = np.exp(log_scores(content_free, labels)).mean(axis=0)
    k = len(labels)
    identity = tuple(tuple(1.0 if i == j else 0.0 for j in range(k)) for i in range(k))
    return Calibration(
        "contextual",
        tuple(labels),
        weights=identity,
        bias=tuple(float(-math.log(max(v, FLOOR))) for v in p_cf),
        detail={"content_free": {lab: float(v) for lab, v in zip(labels, p_cf, strict=True)}},
    )


def can_fit(gold: Sequence[str], labels: Sequence[str], per_label: int = 2) -> bool:
    counts = Counter(gold)
    return all(counts[lab] >= per_label for lab in labels)


def fitted_calibration(
    scores: Sequence[Mapping[str, float]],
    gold: Sequence[str],
    labels: Sequence[str],
    *,
    strength: float = 1.0,
) -> Calibration:
    """A multinomial logistic regression (scikit-learn, L2 with C = ``strength``) from the
    labels' log-probabilities to the gold label. Every label needs examples in ``gold``."""
    from sklearn.linear_model import LogisticRegression

    if not can_fit(gold, labels):
        raise ValueError("every label needs at least two examples to fit a calibration")
    x = log_scores(scores, labels)
    y = np.array([list(labels).index(g) for g in gold])
    model = LogisticRegression(C=strength, max_iter=2000).fit(x, y)
    # scikit-learn orders its classes by value: 0..k-1, the labels' order.
    coef, intercept = model.coef_, model.intercept_
    if len(labels) == 2:
        # Two labels: one row, the log-odds of the second; the first gets zeros so that the
        # softmax of (0, z) is the regression's sigmoid of z.
        coef = np.vstack([np.zeros_like(coef[0]), coef[0]])
        intercept = np.array([0.0, intercept[0]])
    return Calibration(
        "fitted",
        tuple(labels),
        weights=tuple(tuple(float(v) for v in row) for row in coef),
        bias=tuple(float(v) for v in intercept),
        detail={"examples": len(gold)},
    )


def recalibrate(prediction: Prediction, calibration: Calibration) -> Prediction:
    """The prediction with calibrated scores, and the label they make most probable. An answer
    without a score for every label is kept as it is."""
    if calibration.method == "none" or not has_scores(prediction, calibration.labels):
        return prediction
    scores = calibration.apply(prediction.scores)
    label = max(calibration.labels, key=lambda lab: scores[lab])
    return replace(prediction, label=label, scores=scores, confidence=scores[label])


def cross_validated_correct(
    scores: Sequence[Mapping[str, float]],
    gold: Sequence[str],
    labels: Sequence[str],
    *,
    folds: int = 3,
    seed: int = 0,
) -> list[bool]:
    """Per example, whether the fitted calibration labels it right when fitted on the other
    folds: how a prompt (a verbalizer, a number of shots) is chosen on the training split
    alone. Folds are stratified by label; a fold whose training part lacks a label falls back
    to raw scores."""
    by_label: dict[str, list[int]] = {}
    for i, g in enumerate(gold):
        by_label.setdefault(g, []).append(i)
    rng = random.Random(seed)
    fold_of = [0] * len(gold)
    for members in by_label.values():
        rng.shuffle(members)
        for j, i in enumerate(members):
            fold_of[i] = j % folds
    right = [False] * len(gold)
    x = log_scores(scores, labels)
    for f in range(folds):
        train = [i for i in range(len(gold)) if fold_of[i] != f]
        test = [i for i in range(len(gold)) if fold_of[i] == f]
        train_gold = [gold[i] for i in train]
        if can_fit(train_gold, labels):
            cal = fitted_calibration([scores[i] for i in train], train_gold, labels)
            probs = cal.transform(x[test])
        else:
            probs = _softmax(x[test])
        for i, row in zip(test, probs, strict=True):
            right[i] = labels[int(row.argmax())] == gold[i]
    return right


def cross_validated_accuracy(
    scores: Sequence[Mapping[str, float]],
    gold: Sequence[str],
    labels: Sequence[str],
    *,
    folds: int = 3,
    seed: int = 0,
) -> float:
    """The share of ``cross_validated_correct``."""
    right = cross_validated_correct(scores, gold, labels, folds=folds, seed=seed)
    return sum(right) / len(right) if right else 0.0


def clearly_better(a: Sequence[bool], b: Sequence[bool]) -> bool:
    """Whether ``a`` is right more often than ``b`` on the same examples by more than one
    standard error of the paired difference (the one-standard-error rule): a choice made on a
    few dozen training examples keeps the default unless the evidence is more than noise."""
    n = len(a)
    if n < 2:
        return False
    d = np.array([float(x) - float(y) for x, y in zip(a, b, strict=True)])
    return float(d.mean()) > float(d.std(ddof=1)) / math.sqrt(n)
