"""Cascades on a text task: each answer counts its own score on the run's primary metric (an
answer task's token F1, say) instead of right or wrong, and the rungs' confidences are their
answers' grounded confidence."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from rung.route.calibrate import calibrate
from rung.route.policy import Policy
from rung.route.simulate import simulate
from rung.route.table import RungColumn, RunTable


def _table() -> RunTable:
    nan = math.nan

    def column(label: str, conf: list[float], quality: list[float], usd: float) -> RungColumn:
        return RungColumn(
            label=label,
            model=label,
            predicted=tuple(f"{label} answer {i}" for i in range(len(conf))),
            confidence=np.array(conf),
            cost_usd_per_1k=usd,
            quality=np.array(quality),
        )

    return RunTable(
        ids=("a", "b", "c", "d"),
        gold=("gold a", "gold b", "gold c", "gold d"),
        labels=(),
        rungs=(
            column("small", [0.9, 0.8, 0.2, 0.1], [0.9, 0.8, 0.1, 0.0], 1.0),
            column("big", [nan] * 4, [0.9, 0.9, 0.8, 0.9], 10.0),
        ),
        metric="token_f1",
    )


def test_calibrate_keeps_the_small_rungs_confident_answers() -> None:
    cal = calibrate(_table(), 0.95, resamples=200)
    assert cal.metric == "token_f1" and cal.top == "big"
    assert cal.top_accuracy == pytest.approx(0.875)
    assert cal.policy.rungs == ("small", "big")
    [threshold, last] = cal.policy.thresholds
    assert threshold == pytest.approx(0.5) and last is None
    chosen = cal.chosen
    # the small rung keeps a and b (0.9, 0.8), the big one answers c and d (0.8, 0.9)
    assert chosen.accuracy.value == pytest.approx(0.85)
    assert chosen.reference_accuracy.value == pytest.approx(0.875)
    assert chosen.cost_per_request.value * 1000 == pytest.approx(1 + 0.5 * 10)
    assert chosen.saving == pytest.approx(0.4)
    assert chosen.to_json()["metric"] == "token_f1"


def test_a_stricter_target_keeps_fewer_small_answers() -> None:
    # small's answer to a scores what big's does: keeping only it loses nothing
    cal = calibrate(_table(), 1.0, resamples=200)
    assert cal.policy.rungs == ("small", "big")
    assert cal.policy.thresholds[0] == pytest.approx(0.85)
    assert cal.chosen.accuracy.value == pytest.approx(0.875)
    assert cal.chosen.cost_per_request.value * 1000 == pytest.approx(1 + 0.75 * 10)


def test_simulate_scores_the_answering_rungs_values() -> None:
    e = simulate(_table(), Policy(("small", "big"), (0.85, None)), resamples=200)
    # only a (0.9) stays with small; b, c, d climb: 0.9, 0.8, 0.9
    assert e.accuracy.value == pytest.approx((0.9 + 0.9 + 0.8 + 0.9) / 4)
    assert e.shares[0].accuracy_answered == pytest.approx(0.9)
    assert e.difference.value == pytest.approx(0.0)


def test_rungs_without_confidences_are_weighed_alone_with_a_note() -> None:
    table = _table()
    blind = replace(table.rungs[0], confidence=np.full(4, math.nan))
    cal = calibrate(replace(table, rungs=(blind, table.rungs[1])), 0.95, resamples=200)
    assert cal.policy.rungs == ("big",)
    assert any("no rung but the last recorded a confidence" in n for n in cal.notes)
