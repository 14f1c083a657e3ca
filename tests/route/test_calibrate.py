"""Calibration and replay on hand-built prediction tables, where the right answer is known."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from rung.errors import DataError, SpecError
from rung.route import Policy, RunTable, calibrate, decide, load_run, simulate
from rung.route.simulate import replay
from rung.runs import PredictionRow
from rung.tasks.metrics import bootstrap_ci
from tests.runs.records import prediction, run_results, rung_result

LABELS = ["negative", "neutral", "positive"]


def _gold(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [LABELS[i] for i in rng.integers(0, 3, n)]


def _wrong(label: str) -> str:
    return LABELS[(LABELS.index(label) + 1) % 3]


def test_decide_keeps_sure_answers_and_climbs_on_unsure_or_unknown() -> None:
    assert decide(0.9, 0.8) == "answer"
    assert decide(0.8, 0.8) == "answer"
    assert decide(0.79, 0.8) == "climb"
    assert decide(None, 0.0) == "climb"
    assert decide(math.nan, 0.0) == "climb"
    assert decide(None, None) == "answer"  # the last rung answers whatever reaches it
    with pytest.raises(ValueError):
        Policy(("a", "b"), (0.5, 0.5))
    with pytest.raises(ValueError):
        Policy(("a", "b"), (None, None))


def test_a_small_rung_that_is_sure_when_right_answers_most_requests() -> None:
    n = 200
    gold = _gold(n)
    # the small rung is right and sure on 80%, wrong and unsure on 20%; the top is always right
    small = [(g, 0.95) if i % 5 else (_wrong(g), 0.4) for i, g in enumerate(gold)]
    table = RunTable.build(
        gold,
        {
            "small": ([p for p, _ in small], [c for _, c in small]),
            "top": (gold, [0.99] * n),
        },
        costs_usd_per_1k={"small": 1.0, "top": 10.0},
    )
    cal = calibrate(table, 0.99)
    assert cal.order == ("small", "top")
    assert cal.top == "top"
    assert cal.policy.rungs == ("small", "top")
    threshold = cal.policy.thresholds[0]
    assert threshold is not None and 0.4 < threshold <= 0.95
    assert cal.share_of_smallest() == pytest.approx(0.8)
    assert cal.chosen.accuracy.value == 1.0
    # every request pays the small rung, a fifth pay the top one too
    assert cal.chosen.cost_per_request.value == pytest.approx((1.0 + 0.2 * 10.0) / 1000)
    assert cal.chosen.saving == pytest.approx(0.7)
    assert cal.cost_basis == "usd"
    shares = [s.answered.value for s in cal.chosen.shares]
    assert sum(shares) == pytest.approx(1.0)
    low, high = cal.chosen.shares[0].answered.ci95
    assert low < 0.8 < high


def test_when_no_threshold_meets_the_target_everything_goes_to_the_top() -> None:
    n = 120
    gold = _gold(n, seed=1)
    # the small rung is wrong half the time and exactly as sure when wrong as when right
    small_pred = [g if i % 2 else _wrong(g) for i, g in enumerate(gold)]
    table = RunTable.build(
        gold,
        {"small": (small_pred, [0.9] * n), "top": (gold, [0.8] * n)},
        costs_usd_per_1k={"small": 1.0, "top": 10.0},
    )
    cal = calibrate(table, 0.99)
    assert cal.policy == Policy(("top",), (None,))
    assert cal.chosen.shares[0].answered.value == 1.0
    assert cal.share_of_smallest() == 0.0
    assert cal.chosen.saving == 0.0
    assert any("more cheaply than top alone" in note for note in cal.notes)
    # a lower target is met by the small rung alone
    assert calibrate(table, 0.5).policy == Policy(("small",), (None,))


def test_target_one_keeps_at_least_the_top_rungs_accuracy() -> None:
    n = 300
    rng = np.random.default_rng(2)
    gold = _gold(n, seed=2)
    conf_small = rng.uniform(0.34, 1.0, n)
    # the small rung is more often right when sure
    small = [g if rng.uniform() < c else _wrong(g) for g, c in zip(gold, conf_small, strict=True)]
    top = [g if rng.uniform() < 0.9 else _wrong(g) for g in gold]
    table = RunTable.build(
        gold,
        {"small": (small, list(conf_small)), "top": (top, list(rng.uniform(0.5, 1, n)))},
        costs_usd_per_1k={"small": 0.5, "top": 20.0},
    )
    cal = calibrate(table, 1.0)
    assert cal.required_accuracy == cal.top_accuracy
    assert cal.chosen.accuracy.value >= cal.top_accuracy
    assert cal.chosen.cost_per_request.value <= 20.0 / 1000 + 1e-12


def _three_rungs(n: int, seed: int) -> RunTable:
    rng = np.random.default_rng(seed)
    gold = _gold(n, seed)
    rungs = {}
    for name, skill in (("xs", 0.55), ("m", 0.75), ("xl", 0.9)):
        conf = rng.uniform(0.3, 1.0, n).round(2)  # ties, as real confidences have
        pred = [
            g if rng.uniform() < skill * (0.6 + 0.5 * c) else _wrong(g)
            for g, c in zip(gold, conf, strict=True)
        ]
        rungs[name] = (pred, list(conf))
    return RunTable.build(gold, rungs, costs_usd_per_1k={"xs": 1.0, "m": 4.0, "xl": 30.0})


def test_the_curve_is_a_monotone_frontier_and_the_choice_its_cheapest_point() -> None:
    table = _three_rungs(150, seed=3)
    cal = calibrate(table, 0.97)
    costs = [p.cost_per_request for p in cal.curve]
    accs = [p.accuracy for p in cal.curve]
    assert costs == sorted(costs)
    assert all(b > a for a, b in itertools.pairwise(accs))
    for single in cal.singles:
        assert any(
            p.cost_per_request <= single.cost_per_request + 1e-15 and p.accuracy >= single.accuracy
            for p in cal.curve
        )
    feasible = [p for p in cal.curve if p.accuracy >= cal.required_accuracy - 1e-12]
    assert cal.policy == feasible[0].policy
    # every point's figures are what a replay of its policy gives
    for point in cal.curve:
        ev = simulate(table, point.policy, resamples=100)
        assert ev.accuracy.value == pytest.approx(point.accuracy)
        assert ev.cost_per_request.value == pytest.approx(point.cost_per_request)
        assert sum(s.answered.value for s in ev.shares) == pytest.approx(1.0)


def test_calibration_finds_the_cheapest_cascade_a_brute_force_search_finds() -> None:
    table = _three_rungs(40, seed=4)
    names = ["xs", "m", "xl"]
    costs = {"xs": 1.0, "m": 4.0, "xl": 30.0}
    gold = np.array(table.gold)
    top_acc = max(table.accuracy(r) for r in names)
    for target in (0.9, 0.97, 1.0):
        cal = calibrate(table, target)
        best = math.inf
        for size in (1, 2, 3):
            for ladder in itertools.combinations(names, size):
                grids = [
                    [0.0, *map(float, np.unique(table.rung(r).confidence)), 1.01]
                    for r in ladder[:-1]
                ]
                for ts in itertools.product(*grids):
                    policy = Policy(ladder, (*ts, None))
                    who, answers = replay(table, policy)
                    acc = float(np.mean(np.array(answers) == gold))
                    if acc + 1e-12 < target * top_acc:
                        continue
                    cost = sum(costs[r] * float(np.mean(who >= k)) for k, r in enumerate(ladder))
                    best = min(best, cost / 1000)
        assert cal.chosen.cost_per_request.value == pytest.approx(best), target
        assert cal.chosen.accuracy.value + 1e-12 >= target * top_acc


def test_a_one_rung_replay_reproduces_the_runs_own_interval() -> None:
    table = _three_rungs(80, seed=5)
    ev = simulate(table, Policy(("m",), (None,)), resamples=500, seed=7)
    expected = bootstrap_ci(
        list(table.gold), list(table.rung("m").predicted), LABELS, "accuracy", resamples=500, seed=7
    )
    assert ev.accuracy == expected
    assert ev.reference == "m"
    assert ev.difference.value == 0.0


def test_unknown_costs_fall_back_to_relative_latency_and_say_so() -> None:
    gold = _gold(50, seed=6)
    table = RunTable.build(
        gold,
        {"small": (gold, [0.9] * 50), "top": (gold, [0.9] * 50)},
        costs_usd_per_1k={"small": None, "top": 2.0},
        latencies_ms={"small": 5.0, "top": 80.0},
    )
    cal = calibrate(table, 0.99)
    assert cal.cost_basis == "latency_ms"
    assert any("latency" in note for note in cal.notes)
    assert cal.policy == Policy(("small",), (None,))
    assert cal.to_json()["cost_unit"] == "ms_per_request"


def test_holdout_reports_the_chosen_cascade_on_unseen_examples() -> None:
    table = _three_rungs(200, seed=8)
    cal = calibrate(table, 0.95, holdout=0.3)
    assert cal.holdout is not None
    assert cal.holdout.n == 60 and cal.chosen.n == 140
    assert cal.holdout.policy == cal.policy


@pytest.mark.parametrize("target", [0.0, -0.5, 1.01, math.nan])
def test_a_target_outside_zero_one_is_refused(target: float) -> None:
    table = _three_rungs(20, seed=9)
    with pytest.raises(SpecError, match="outside"):
        calibrate(table, target)


def test_unknown_or_repeated_rungs_are_refused() -> None:
    table = _three_rungs(20, seed=9)
    with pytest.raises(SpecError, match=r"no rung 'xxl'.*did you mean"):
        calibrate(table, 0.9, ["xs", "xxl"])
    with pytest.raises(SpecError, match="listed twice"):
        calibrate(table, 0.9, ["xs", "xs"])


def _write_run(folder: Path, rows: list[PredictionRow]) -> Path:
    folder.mkdir()
    rungs = sorted({r.rung for r in rows})
    results = run_results(
        [rung_result(r, model=r, cost_usd_per_1k=1.0, p95=2.0) for r in rungs], labels=LABELS
    )
    (folder / "results.json").write_text(results.to_text(), encoding="utf-8")
    (folder / "predictions.jsonl").write_text(
        "\n".join(r.to_line() for r in rows) + "\n", encoding="utf-8"
    )
    return folder


def _row(rung: str, i: int, gold: str = "neutral") -> PredictionRow:
    return prediction(rung, i, gold)


def test_run_folders_that_cannot_be_routed_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_run(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=r"no predictions\.jsonl"):
        load_run(empty)
    differ = _write_run(
        tmp_path / "differ", [_row("a:x", 1), _row("a:x", 2), _row("b:y", 1), _row("b:y", 3)]
    )
    with pytest.raises(DataError, match="different examples"):
        load_run(differ)
    gold = _write_run(tmp_path / "gold", [_row("a:x", 1), _row("b:y", 1, gold="positive")])
    with pytest.raises(DataError, match="different data"):
        load_run(gold)
    bad = tmp_path / "bad"
    _write_run(bad, [_row("a:x", 1)])
    (bad / "predictions.jsonl").write_text('{"rung": "a:x"}\n', encoding="utf-8")
    with pytest.raises(DataError, match="line 1"):
        load_run(bad)
    good = load_run(_write_run(tmp_path / "good", [_row("a:x", 1), _row("b:y", 1)]))
    assert good.names() == ["a:x", "b:y"] and good.n == 1


def test_a_cascade_that_never_climbs_is_not_chosen_over_its_first_rung_alone() -> None:
    """A regression: float round-off made "small, then top for nobody" look a hair cheaper
    than "small" alone."""
    n = 300
    rng = np.random.default_rng(10)
    gold = _gold(n, seed=10)
    small = [g if rng.uniform() < 0.85 else _wrong(g) for g in gold]
    top = [g if rng.uniform() < 0.25 else _wrong(g) for g in gold]
    table = RunTable.build(
        gold,
        {
            "small": (small, list(rng.uniform(0.34, 1, n))),
            "top": (top, list(rng.uniform(0.34, 1, n))),
        },
        costs_usd_per_1k={"small": 0.0033421977, "top": 0.0209831},
    )
    cal = calibrate(table, 0.99)
    assert cal.policy == Policy(("small",), (None,))
    assert cal.curve[0].policy == cal.policy
