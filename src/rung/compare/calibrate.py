"""Choosing, per generative rung, the words it answers with and the correction of its label
bias, on training examples only.

A small generative rung's raw label scores lean towards one label (SmolLM2-135M answered
"negative" for most of the demo's sentences, scoring below always answering the most frequent
label). Before it answers the test set, the rung is asked a stratified sample of training
examples (none of them a shot) in every way of asking: each number of shots tried × each
candidate verbalizer (``rung.tasks.verbalizers``), with the content-free texts of contextual
calibration. The default way (the spec's shots, the label names) is kept unless another is
clearly better there, and the calibration (``rung.tasks.calibration``) is fitted on its
answers. The test answers are then mapped back to the labels and recalibrated; results.json
keeps both the raw and the calibrated figures.

Nothing here looks at the test split: the choice is what a user would make with only the
training data in hand.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from rung.models.base import ClassifyRequest, Model, Prediction
from rung.tasks.calibration import (
    CONTENT_FREE_TEXTS,
    Calibration,
    can_fit,
    clearly_better,
    contextual_calibration,
    cross_validated_correct,
    fitted_calibration,
    has_scores,
    no_calibration,
    recalibrate,
)
from rung.tasks.classify import ClassifyTask, TaskData, build_requests, shot_examples
from rung.tasks.data import Example
from rung.tasks.verbalizers import Verbalizer, candidate_verbalizers

__all__ = [
    "CalibrationPlan",
    "Candidate",
    "Chosen",
    "plan_calibration",
    "to_labels",
    "uncalibrated",
    "with_shots",
]

#: the fewest calibration examples per label for ``auto`` to fit a regression rather than
#: divide by the content-free scores
FIT_PER_LABEL = 5


def to_labels(prediction: Prediction, verbalizer: Mapping[str, str]) -> Prediction:
    """An answer given in a verbalizer's words, in the labels' names."""
    label_of = {word: label for label, word in verbalizer.items()}
    if all(label_of.get(w) == w for w in label_of):
        return prediction
    label = label_of.get(prediction.label) if prediction.label is not None else None
    scores = {label_of[w]: s for w, s in prediction.scores.items() if w in label_of}
    return replace(prediction, label=label, scores=scores)


def with_shots(task: ClassifyTask, shots: int | None) -> ClassifyTask:
    """The task with another number of shots per label in its prompt."""
    if shots is None or shots == task.prompt.shots:
        return task
    return task.model_copy(update={"prompt": task.prompt.model_copy(update={"shots": shots})})


@dataclass(frozen=True)
class Candidate:
    """One way of asking a rung: the shots per label and the words of the labels."""

    shots: int
    verbalizer: Verbalizer

    def name(self, labels: Sequence[str]) -> str:
        return f"{self.shots} shots, " + "/".join(self.verbalizer[lab] for lab in labels)


@dataclass(frozen=True)
class Chosen:
    """What a rung is asked with and how its scores are corrected, and why."""

    verbalizer: Verbalizer
    calibration: Calibration
    #: for the run record: the method, the verbalizer, every candidate's accuracy
    detail: dict[str, Any] = field(default_factory=dict)
    #: shots per label, when chosen among several (None: the spec's prompt.shots)
    shots: int | None = None

    def requests(self, task: ClassifyTask, data: TaskData) -> list[ClassifyRequest]:
        return build_requests(with_shots(task, self.shots), data, verbalizer=self.verbalizer)

    def correct(self, prediction: Prediction) -> tuple[Prediction, Prediction]:
        """(raw, calibrated): the answer in the labels' names, before and after calibration."""
        raw = to_labels(prediction, self.verbalizer)
        return raw, recalibrate(raw, self.calibration)


def uncalibrated(labels: Sequence[str], reason: str) -> Chosen:
    """The labels as they are and no correction (encoders, API rungs, calibration: none)."""
    return Chosen(
        {lab: lab for lab in labels},
        no_calibration(labels, reason),
        {"method": "none", "reason": reason},
    )


def _shot_counts(task: ClassifyTask) -> list[int]:
    counts = [task.prompt.shots]
    counts += [k for k in task.calibration.shots if k not in counts]
    return counts


def _calibration_examples(task: ClassifyTask, data: TaskData) -> list[Example]:
    """A stratified, seeded sample of the training split, none of them a shot of any prompt
    tried."""
    shots = {ex.text for k in _shot_counts(task) for ex in shot_examples(with_shots(task, k), data)}
    rng = random.Random(task.seed + 1)
    per_label = max(1, task.calibration.examples // len(data.labels))
    picked: list[Example] = []
    for label in data.labels:
        group = [ex for ex in data.train if ex.label == label and ex.text not in shots]
        picked.extend(rng.sample(group, min(per_label, len(group))))
    rng.shuffle(picked)
    return picked


@dataclass(frozen=True)
class CalibrationPlan:
    """The requests a rung answers before the test set, and how its choice is made from them."""

    task: ClassifyTask
    data: TaskData
    examples: list[Example]
    candidates: list[Candidate]

    def requests(self) -> list[ClassifyRequest]:
        """Per candidate: the calibration examples, then the content-free texts."""
        texts = [ex.text for ex in self.examples] + list(CONTENT_FREE_TEXTS)
        out: list[ClassifyRequest] = []
        for c in self.candidates:
            task = with_shots(self.task, c.shots)
            out += build_requests(task, self.data, verbalizer=c.verbalizer, texts=texts)
        return out

    def choose(self, answers: Sequence[Prediction]) -> Chosen:
        """The way of asking and the calibration, from the answers to ``requests()`` in order.
        The first candidate (the spec's shots, the label names) is kept unless another is
        clearly better on the training examples (by more than a standard error): a choice
        among six made on a few dozen examples would otherwise often follow the noise."""
        labels = list(self.data.labels)
        gold = [ex.label for ex in self.examples]
        per = len(self.examples) + len(CONTENT_FREE_TEXTS)
        rights: list[list[bool]] = []
        chunks: list[tuple[list[Prediction], list[Prediction]]] = []
        accuracy: dict[str, float] = {}
        for i, candidate in enumerate(self.candidates):
            verbalizer = candidate.verbalizer
            chunk = [to_labels(p, verbalizer) for p in answers[i * per : (i + 1) * per]]
            asked, free = chunk[: len(self.examples)], chunk[len(self.examples) :]
            if all(has_scores(p, labels) for p in asked):
                right = cross_validated_correct(
                    [p.scores for p in asked], gold, labels, seed=self.task.seed
                )
            else:  # a rung without label scores: plain accuracy of its answers
                right = [p.label == g for p, g in zip(asked, gold, strict=True)]
            rights.append(right)
            chunks.append((asked, free))
            accuracy[candidate.name(labels)] = round(sum(right) / len(right), 4)
        # ties keep the earlier candidate
        top = max(range(len(rights)), key=lambda i: (sum(rights[i]), -i))
        pick = top if top == 0 or clearly_better(rights[top], rights[0]) else 0
        best = self.candidates[pick]
        asked, free = chunks[pick]
        calibration = self._calibration(asked, free, gold, labels, rights[pick])
        several = len({c.shots for c in self.candidates}) > 1
        rule = (
            "the best cross-validated accuracy on training examples"
            if pick == top
            else f"the default: {self.candidates[top].name(labels)} was not better by more "
            "than a standard error on training examples"
        )
        detail: dict[str, Any] = {
            **calibration.to_json(),
            "verbalizer": dict(best.verbalizer),
            "shots": best.shots,
            "examples": len(self.examples),
            "candidates": accuracy,
            "chosen_on": rule,
        }
        return Chosen(best.verbalizer, calibration, detail, best.shots if several else None)

    def _calibration(
        self,
        asked: list[Prediction],
        free: list[Prediction],
        gold: list[str],
        labels: list[str],
        fitted_right: list[bool],
    ) -> Calibration:
        method = self.task.calibration.method
        if not all(has_scores(p, labels) for p in asked + free):
            return no_calibration(labels, "the rung gives no score for every label")
        if method == "auto":
            method = "fitted" if can_fit(gold, labels, FIT_PER_LABEL) else "contextual"
            raw_right = sum(p.label == g for p, g in zip(asked, gold, strict=True))
            if method == "fitted" and raw_right >= sum(fitted_right):
                return no_calibration(
                    labels,
                    "the raw scores did as well as the fitted correction on training examples",
                )
        if method == "fitted" and can_fit(gold, labels):
            return fitted_calibration([p.scores for p in asked], gold, labels)
        return contextual_calibration([p.scores for p in free], labels)


def plan_calibration(task: ClassifyTask, data: TaskData, model: Model) -> CalibrationPlan | Chosen:
    """What a rung is asked before the test set, or, when it is not calibrated, the choice made
    without asking (the labels' names, raw scores) and why."""
    labels = list(data.labels)
    spec = task.calibration
    if spec.method == "none":
        return uncalibrated(labels, "calibration.method is none")
    if not model.can_generate:
        return uncalibrated(labels, "not a generative rung (its classifier is trained on the task)")
    if model.billing == "tokens":
        return uncalibrated(labels, "an API rung: asking training examples would cost tokens")
    examples = _calibration_examples(task, data)
    if len({ex.label for ex in examples}) < len(labels):
        return uncalibrated(labels, "the training split lacks examples of some label")
    words = candidate_verbalizers(labels, task.prompt.verbalizers)
    if not spec.choose_verbalizer:
        # the spec's own verbalizer when it gives one, else the label names
        words = [dict(task.prompt.verbalizers[0])] if task.prompt.verbalizers else words[:1]
    candidates = [Candidate(k, v) for k in _shot_counts(task) for v in words]
    return CalibrationPlan(task, data, examples, candidates)
