"""Choosing a generative rung's words and calibration on training examples (compare.calibrate):
the choice is made from the answers to the plan's requests alone, in the plan's order."""

from __future__ import annotations

from pathlib import Path

import pytest

from rung.compare.calibrate import (
    CalibrationPlan,
    Chosen,
    plan_calibration,
    to_labels,
    with_shots,
)
from rung.models import registry
from rung.models.base import Prediction
from rung.tasks.calibration import CONTENT_FREE_TEXTS
from rung.tasks.classify import ClassifyTask, load_task_data, shot_examples

LABELS = ("negative", "neutral", "positive")


def _task(fpb_path: Path, **extra: object) -> ClassifyTask:
    return ClassifyTask.model_validate(
        {
            "type": "classify",
            "data": {"path": str(fpb_path)},
            "labels": list(LABELS),
            "train_size": 200,
            "test_size": 30,
            "seed": 3,
            "prompt": {"shots": 2},
            **extra,
        }
    )


def test_words_map_back_to_the_labels() -> None:
    words = {"negative": "bad", "neutral": "neutral", "positive": "good"}
    pred = Prediction("good", {"bad": 0.1, "neutral": 0.2, "good": 0.7}, 0.7)
    back = to_labels(pred, words)
    assert back.label == "positive"
    assert back.scores == {"negative": 0.1, "neutral": 0.2, "positive": 0.7}
    # an answer that is none of the words stays invalid
    assert to_labels(Prediction(None, {}), words).label is None


def test_encoders_and_method_none_are_not_calibrated(fpb_path: Path) -> None:
    task = _task(fpb_path)
    data = load_task_data(task, fpb_path.parent)
    encoder = registry.create("encoder:minilm-l6", {})
    chosen = plan_calibration(task, data, encoder)
    assert isinstance(chosen, Chosen) and chosen.calibration.method == "none"
    assert "not a generative rung" in chosen.detail["reason"]
    off = _task(fpb_path, calibration={"method": "none"})
    smol = registry.create("llamacpp:smollm2-135m-instruct", {})
    assert isinstance(plan_calibration(off, data, smol), Chosen)


def _plan(fpb_path: Path, **extra: object) -> CalibrationPlan:
    task = _task(fpb_path, **extra)
    data = load_task_data(task, fpb_path.parent)
    plan = plan_calibration(task, data, registry.create("llamacpp:smollm2-135m-instruct", {}))
    assert isinstance(plan, CalibrationPlan)
    return plan


def test_calibration_examples_are_training_examples_and_never_shots(fpb_path: Path) -> None:
    plan = _plan(fpb_path, calibration={"examples": 30})
    train = {ex.text for ex in plan.data.train}
    test = {ex.text for ex in plan.data.test}
    shots = {ex.text for ex in shot_examples(plan.task, plan.data)}
    asked = {ex.text for ex in plan.examples}
    assert len(plan.examples) == 30 and asked <= train
    assert not asked & test and not asked & shots
    assert sorted(ex.label for ex in plan.examples) == sorted(list(LABELS) * 10)
    requests = plan.requests()
    assert len(requests) == len(plan.candidates) * (30 + len(CONTENT_FREE_TEXTS))
    # the first candidate is the label names; each candidate's requests ask in its words
    assert plan.candidates[0].verbalizer == {lab: lab for lab in LABELS}
    per = 30 + len(CONTENT_FREE_TEXTS)
    for i, c in enumerate(plan.candidates):
        assert requests[i * per].labels == tuple(c.verbalizer[lab] for lab in LABELS)


def test_numbers_of_shots_are_tried_with_every_verbalizer(fpb_path: Path) -> None:
    plan = _plan(fpb_path, calibration={"examples": 30, "shots": [1, 2]})
    words = {tuple(c.verbalizer.values()) for c in plan.candidates}
    assert [c.shots for c in plan.candidates] == [2] * len(words) + [1] * len(words)
    shots = {ex.text for k in (1, 2) for ex in shot_examples(with_shots(plan.task, k), plan.data)}
    assert not {ex.text for ex in plan.examples} & shots
    requests = plan.requests()
    per = 30 + len(CONTENT_FREE_TEXTS)
    # a one-shot prompt holds three examples (one per label), a two-shot one six
    one_shot = requests[len(words) * per]
    two_shot = requests[0]
    assert len(one_shot.messages) == 1 + 2 * 3 + 1 and len(two_shot.messages) == 1 + 2 * 6 + 1
    good = len(words)  # the first one-shot candidate
    chosen = plan.choose(_answers(plan, good))
    assert chosen.shots == 1 and chosen.detail["shots"] == 1
    assert len(chosen.requests(plan.task, plan.data)[0].messages) == 1 + 2 * 3 + 1


def _lean(gold: str | None, signal: bool) -> dict[str, float]:
    """Scores that lean towards 'negative'; with ``signal`` the gold label comes second, so the
    raw answer is 'negative' but a fitted correction can read the gold label."""
    if gold is None or not signal or gold == "negative":
        return {lab: (0.8 if lab == "negative" else 0.1) for lab in LABELS}
    return {lab: 0.6 if lab == "negative" else 0.3 if lab == gold else 0.1 for lab in LABELS}


def _answers(
    plan: CalibrationPlan, good: int, wrong: dict[int, set[int]] | None = None
) -> list[Prediction]:
    """Answers to the plan's requests where candidate ``good`` carries the gold label's signal
    (except on the examples ``wrong`` lists for it) and every other candidate none."""
    wrong = wrong or {}
    out = []
    for i, candidate in enumerate(plan.candidates):
        words = candidate.verbalizer
        golds = [ex.label for ex in plan.examples] + [None] * len(CONTENT_FREE_TEXTS)
        for j, gold in enumerate(golds):
            signal = (i == good or i in wrong) and j not in wrong.get(i, set())
            scores = {words[lab]: v for lab, v in _lean(gold, signal).items()}
            best = max(scores, key=lambda w: scores[w])
            out.append(Prediction(best, scores, scores[best]))
    return out


@pytest.mark.parametrize("good", [0, 2])
def test_the_verbalizer_that_scores_best_on_training_examples_is_chosen(
    fpb_path: Path, good: int
) -> None:
    plan = _plan(fpb_path)
    assert len(plan.candidates) >= 3
    chosen = plan.choose(_answers(plan, good))
    best = plan.candidates[good]
    assert chosen.verbalizer == best.verbalizer and chosen.shots is None
    assert chosen.calibration.method == "fitted"  # 20 examples per label: enough to fit
    assert chosen.detail["candidates"][best.name(LABELS)] == 1.0
    words = best.verbalizer
    raw, calibrated = chosen.correct(
        Prediction(
            words["positive"],
            {words[lab]: s for lab, s in zip(LABELS, (0.2, 0.2, 0.6), strict=True)},
        )
    )
    assert raw.label == calibrated.label == "positive"


def test_auto_falls_back_to_contextual_calibration_on_few_examples(fpb_path: Path) -> None:
    plan = _plan(fpb_path, calibration={"examples": 9})
    chosen = plan.choose(_answers(plan, 0))
    assert chosen.calibration.method == "contextual"
    # the content-free answers lean to 'negative': dividing by them lowers 'negative'
    raw, calibrated = chosen.correct(
        Prediction("negative", {"negative": 0.5, "neutral": 0.3, "positive": 0.2})
    )
    assert raw.label == "negative" and calibrated.label == "neutral"


def test_a_rung_without_label_scores_is_left_uncorrected(fpb_path: Path) -> None:
    plan = _plan(fpb_path, calibration={"choose_verbalizer": False})
    assert [c.verbalizer for c in plan.candidates] == [{lab: lab for lab in LABELS}]
    golds = [ex.label for ex in plan.examples] + ["neutral"] * len(CONTENT_FREE_TEXTS)
    chosen = plan.choose([Prediction(g, {}) for g in golds])
    assert chosen.calibration.method == "none"
    assert "no score for every label" in chosen.detail["reason"]


def test_the_default_is_kept_unless_another_is_clearly_better(fpb_path: Path) -> None:
    plan = _plan(fpb_path, calibration={"examples": 30})
    positives = [j for j, ex in enumerate(plan.examples) if ex.label == "positive"]
    # the second candidate gets one more example right than the default: noise, not evidence
    answers = _answers(plan, 0, {0: set(positives[:2]), 1: {positives[2]}})
    chosen = plan.choose(answers)
    words = [c.name(LABELS) for c in plan.candidates]
    assert chosen.detail["candidates"][words[1]] > chosen.detail["candidates"][words[0]]
    assert chosen.verbalizer == plan.candidates[0].verbalizer
    assert chosen.detail["chosen_on"].startswith("the default:")


def test_raw_scores_that_do_as_well_are_left_uncorrected(fpb_path: Path) -> None:
    plan = _plan(fpb_path, calibration={"examples": 30, "choose_verbalizer": False})
    golds = [ex.label for ex in plan.examples]
    answers = [Prediction(g, {lab: 0.6 if lab == g else 0.2 for lab in LABELS}) for g in golds] + [
        Prediction("neutral", {lab: 1 / 3 for lab in LABELS})
    ] * len(CONTENT_FREE_TEXTS)
    chosen = plan.choose(answers)
    assert chosen.calibration.method == "none"
    assert "raw scores did as well" in chosen.detail["reason"]
