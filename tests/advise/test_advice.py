"""The advice as a pure function, on hand-built result tables: one test per rule."""

from __future__ import annotations

import json

import pytest

from rung.advise.advice import Constraints, advise, parse_results
from rung.catalog.cards import ModelCard
from rung.catalog.prices import ApiPrice
from rung.errors import DataError
from rung.runs import LoadLevel, RungResult, RunResults
from tests.runs.records import load_level, run_results, rung_result

GB = 10**9


def rung(
    label: str,
    acc: float,
    ci: tuple[float, float],
    *,
    p95: float = 50.0,
    thr: float = 10.0,
    params: int | None = None,
    tokens_in: float = 100.0,
    f1: tuple[float, float, float] | None = None,
    load: list[LoadLevel] | None = None,
) -> RungResult:
    return rung_result(
        label,
        acc,
        ci,
        macro_f1=f1,
        p95=p95,
        throughput=thr,
        params=params,
        tokens_in=tokens_in,
        load=load,
    )


def local(label: str, params: int, weights: int, kv_per_token: int = 2 * 24 * 4 * 64) -> ModelCard:
    return ModelCard(
        model_id=f"test:{label}",
        kind="decoder",
        origin="test",
        figures_from="test",
        params=params,
        weights_bytes=weights,
        n_layers=24,
        n_kv_heads=4,
        head_dim=64,
        kv_values_per_token=kv_per_token,
        context_length=32768,
        on_prem=True,
    )


def api(label: str, input_per_mtok: float = 1.0, output_per_mtok: float = 4.0) -> ModelCard:
    price = ApiPrice(label, label, "openai", input_per_mtok, output_per_mtok, "test prices")
    return ModelCard(
        model_id=f"test:{label}",
        kind="api",
        origin="test",
        figures_from="test",
        on_prem=False,
        price=price,
    )


def ladder() -> tuple[RunResults, dict[str, ModelCard]]:
    """A small encoder, a 1.5B local model and an API model, as a compare run reports them."""
    results = run_results(
        [
            rung("tiny", 0.80, (0.74, 0.86), p95=8, thr=100, params=22_000_000),
            rung("mid", 0.84, (0.79, 0.89), p95=400, thr=2, params=1_500_000_000),
            rung("api", 0.93, (0.90, 0.96), p95=700, thr=8, tokens_in=1000),
        ]
    )
    cards = {
        "tiny": local("tiny", 22_000_000, 90_000_000, kv_per_token=0),
        "mid": local("mid", 1_500_000_000, 3 * GB),
        "api": api("api"),
    }
    return results, cards


def test_recommends_the_smallest_rung_that_meets_every_constraint() -> None:
    results, cards = ladder()
    advice = advise(results, Constraints(min_accuracy=0.78), cards)
    assert advice.recommended is not None and advice.recommended.label == "tiny"
    assert "smallest rung that meets every constraint" in advice.reasons[0]
    assert any("0.800 [0.74–0.86] meets the 0.78 floor" in r for r in advice.reasons)
    runners = {a.label: text for a, text in advice.runners_up}
    assert runners["mid"].startswith("meets every constraint, but is larger (1.5B against 22M")


def test_overlapping_intervals_are_called_a_tie_and_the_smaller_wins() -> None:
    results, cards = ladder()
    advice = advise(results, Constraints(min_accuracy=0.78), cards)
    assert len(advice.ties) == 1
    tie = advice.ties[0]
    assert "tiny and mid are statistically tied on accuracy" in tie
    assert "prefers the smaller, tiny" in tie


def test_clearly_better_rung_is_named_with_its_cost() -> None:
    results, cards = ladder()
    advice = advise(results, Constraints(min_accuracy=0.78), cards)
    text = " ".join(advice.what_would_change)
    assert "api is clearly more accurate" in text and "do not overlap" in text
    assert "as much per request" in text


def test_floor_met_by_the_point_estimate_only_is_a_caveat() -> None:
    results, cards = ladder()
    advice = advise(results, Constraints(min_accuracy=0.78), cards)
    assert advice.caveats, advice.to_json()
    assert "reaches down to 0.740" in advice.caveats[0]
    assert "200 test examples" in advice.caveats[0]
    none = advise(results, Constraints(min_accuracy=0.70), cards)
    assert not none.caveats  # 0.74 is above 0.70: the interval clears the floor


def test_no_rung_meets_the_floor() -> None:
    results, cards = ladder()
    advice = advise(results, Constraints(min_accuracy=0.97), cards)
    assert advice.recommended is None
    assert advice.reasons[0] == "No rung meets every constraint."
    assert any("the closest is api" in r and "4.0 points under" in r for r in advice.reasons)
    fine_tune = [w for w in advice.what_would_change if "Fine-tuning" in w]
    assert fine_tune and "Fine-tuning tiny (22M)" in fine_tune[0]
    assert "17.0 points short" in fine_tune[0]
    assert "the closest such rung, mid, is 13.0 points short" in fine_tune[0]


def test_fine_tuning_is_only_suggested_for_a_rung_that_fails_the_floor_alone() -> None:
    results, cards = ladder()
    advice = advise(results, Constraints(min_accuracy=0.97, max_p95_ms=100), cards)
    fine_tune = [w for w in advice.what_would_change if "Fine-tuning" in w]
    assert fine_tune and "Fine-tuning tiny" in fine_tune[0]
    assert "mid" not in fine_tune[0]  # mid is too slow: tuning would not fix its latency


def test_wide_intervals_are_a_caveat() -> None:
    results = run_results(
        [
            rung("a", 0.60, (0.40, 0.80), params=10),
            rung("b", 0.70, (0.50, 0.90), params=20),
        ]
    )
    advice = advise(results, Constraints(), {"a": local("a", 10, 10), "b": local("b", 20, 20)})
    assert advice.recommended is not None and advice.recommended.label == "a"
    assert any("is wide (0.40–0.80, 200 test examples)" in c for c in advice.caveats)
    assert advice.ties  # tied with b, the smaller preferred


def test_on_prem_excludes_api_rungs() -> None:
    results, cards = ladder()
    advice = advise(results, Constraints(min_accuracy=0.90, on_prem=True), cards)
    assert advice.recommended is None
    runners = {a.label: text for a, text in advice.runners_up}
    assert "sends the data off premises (to openai)" in runners["api"]
    wwc = " ".join(advice.what_would_change)
    assert "Letting the data leave the premises would make api the choice" in wwc
    assert "is the way to meet it on premises" in wwc
    # Without the floor, on-prem still only excludes the API: tiny and mid are tied, tiny wins.
    open_advice = advise(results, Constraints(on_prem=True), cards)
    assert open_advice.recommended is not None and open_advice.recommended.label == "tiny"


def test_device_excludes_large_models_and_suggests_a_quantization() -> None:
    results = run_results(
        [
            rung("tiny", 0.80, (0.76, 0.84), params=22_000_000),
            rung("big", 0.91, (0.88, 0.94), params=7_000_000_000),
        ]
    )
    cards = {
        "tiny": local("tiny", 22_000_000, 90_000_000, kv_per_token=0),
        "big": local("big", 7_000_000_000, 14 * GB, kv_per_token=2 * 28 * 4 * 128),
    }
    advice = advise(results, Constraints(min_accuracy=0.75, device="laptop"), cards)
    assert advice.recommended is not None and advice.recommended.label == "tiny"
    big = next(a for a in advice.assessments if a.label == "big")
    check = next(c for c in big.checks if c.constraint == "device")
    assert check.status == "fail" and check.gap is not None and check.gap > 0
    assert "more than the" in check.text and "laptop leaves usable" in check.text
    wwc = " ".join(advice.what_would_change)
    assert "A Q8_0 build of big" in wwc and "would fit the laptop" in wwc
    assert "one 24 GB GPU would fit big" in wwc
    assert advice.notes and any("not measured" in n for n in advice.notes)


def test_latency_limit() -> None:
    results, cards = ladder()
    advice = advise(results, Constraints(min_accuracy=0.83, max_p95_ms=500), cards)
    assert advice.recommended is not None and advice.recommended.label == "mid"
    runners = {a.label: text for a, text in advice.runners_up}
    assert "p95 latency 700 ms is 200 ms over the 500 ms limit (40% over)" in runners["api"]


def test_cost_limit_and_the_budget_that_would_change_it() -> None:
    results, cards = ladder()
    advice = advise(results, Constraints(max_cost_per_1k=0.5, min_accuracy=0.83), cards)
    api_row = next(a for a in advice.assessments if a.label == "api")
    # 1000 tokens in at $1/M + 1 token out at $4/M, per request, times 1,000 requests
    assert api_row.cost_per_1k == pytest.approx(1.004)
    assert "API tokens: 1000 in + 1 out" in api_row.cost_basis
    assert advice.recommended is not None and advice.recommended.label == "mid"
    runners = {a.label: text for a, text in advice.runners_up}
    assert "over the $0.50 limit" in runners["api"]
    assert any(
        "A budget of $1.00 per 1,000 requests would buy api, 9.0 points more accuracy" in w
        for w in advice.what_would_change
    )


def test_accepting_less_accuracy_saves_cost() -> None:
    results = run_results(
        [
            rung("small", 0.88, (0.85, 0.91), thr=20, params=135_000_000),
            rung("api", 0.90, (0.87, 0.93), tokens_in=1000),
        ]
    )
    cards = {"small": local("small", 135_000_000, 100_000_000), "api": api("api")}
    advice = advise(results, Constraints(min_accuracy=0.90, hourly_price=0.36), cards)
    assert advice.recommended is not None and advice.recommended.label == "api"
    small = next(a for a in advice.assessments if a.label == "small")
    assert small.cost_per_1k == pytest.approx(0.36 / (20 * 3600) * 1000)
    text = advice.what_would_change[0]
    assert text.startswith("Accepting 2.0 points less accuracy (a floor of 0.880)")
    assert "would make small (135M) the choice, saving 99.5% of the cost" in text
    assert "($1.00 → $0.005)" in text


def test_unknown_price_is_never_a_pass() -> None:
    results = run_results([rung("mystery", 0.95, (0.92, 0.98))])
    card = ModelCard(
        model_id="test:mystery", kind="api", origin="test", figures_from="t", on_prem=False
    )
    advice = advise(results, Constraints(max_cost_per_1k=1.0), {"mystery": card})
    assert advice.recommended is None
    check = next(c for c in advice.assessments[0].checks if c.constraint == "max_cost_per_1k")
    assert check.status == "unknown" and "no token price" in check.text


def test_concurrency_needs_load_figures() -> None:
    results, cards = ladder()
    advice = advise(results, Constraints(concurrency=16), cards)
    assert any("cannot be checked" in n for n in advice.notes)
    loaded = run_results(
        [
            rung(
                "tiny",
                0.80,
                (0.74, 0.86),
                params=22_000_000,
                load=[load_level(16, p95=900, throughput=50)],
            ),
            rung(
                "mid",
                0.82,
                (0.76, 0.88),
                params=1_500_000_000,
                load=[load_level(32, p95=300, throughput=20)],
            ),
        ]
    )
    advice = advise(loaded, Constraints(concurrency=16, max_p95_ms=1000), cards)
    tiny = next(a for a in advice.assessments if a.label == "tiny")
    assert next(c for c in tiny.checks if c.constraint == "concurrency").status == "pass"
    strict = advise(loaded, Constraints(concurrency=16, max_p95_ms=500, min_accuracy=0.7), cards)
    assert strict.recommended is not None and strict.recommended.label == "mid"
    assert not any("cannot be checked" in n for n in strict.notes)
    # a level where some requests failed
    loaded.rungs[1].load = [
        load_level(16, p95=300.0, throughput=20.0, requests=40, errors=3, first_error="boom")
    ]
    erring = advise(loaded, Constraints(concurrency=16), cards)
    mid = next(a for a in erring.assessments if a.label == "mid")
    failed = next(c for c in mid.checks if c.constraint == "concurrency")
    assert failed.status == "fail" and "failed 3 of 40 requests" in failed.text


def test_without_a_floor_the_smallest_rung_tied_with_the_best_wins() -> None:
    results = run_results(
        [
            rung("weak", 0.60, (0.55, 0.65), params=10_000_000),
            rung("good", 0.88, (0.84, 0.92), params=500_000_000),
            rung("best", 0.90, (0.86, 0.94), params=7_000_000_000),
        ]
    )
    cards = {
        "weak": local("weak", 10_000_000, 40_000_000),
        "good": local("good", 500_000_000, GB),
        "best": local("best", 7_000_000_000, 14 * GB),
    }
    advice = advise(results, Constraints(), cards)
    assert advice.recommended is not None and advice.recommended.label == "good"
    assert "not measurably below the best" in advice.reasons[0]
    runners = {a.label: text for a, text in advice.runners_up}
    assert "clearly below best's" in runners["weak"]
    assert any(
        w.startswith("Accepting 30.0 points less accuracy") for w in advice.what_would_change
    )


def test_macro_f1_floor_judges_ties_on_macro_f1() -> None:
    results = run_results(
        [
            rung("a", 0.9, (0.85, 0.95), params=10, f1=(0.70, 0.60, 0.80)),
            rung("b", 0.9, (0.85, 0.95), params=20, f1=(0.78, 0.70, 0.86)),
        ]
    )
    cards = {"a": local("a", 10, 10), "b": local("b", 20, 20)}
    advice = advise(results, Constraints(min_macro_f1=0.7), cards)
    assert advice.metric == "macro_f1"
    assert advice.recommended is not None and advice.recommended.label == "a"
    assert "tied on macro-F1" in advice.ties[0]


def test_json_shape_is_stable() -> None:
    results, cards = ladder()
    doc = advise(results, Constraints(min_accuracy=0.78, device="phone"), cards).to_json()
    json.dumps(doc)
    assert set(doc) == {
        "advice_version", "constraints", "metric", "recommended", "reasons", "caveats", "ties",
        "runners_up", "what_would_change", "notes", "rungs",
    }  # fmt: skip
    assert doc["advice_version"] == 1
    assert doc["recommended"] == {"label": "tiny", "model": "test:tiny"}
    assert set(doc["rungs"][0]) == {
        "label", "model", "kind", "on_prem", "params", "n", "quality", "accuracy", "macro_f1",
        "p95_ms",
        "throughput_per_s", "cost_per_1k", "cost_basis", "memory_bytes", "meets_all", "checks",
    }  # fmt: skip
    assert set(doc["rungs"][0]["checks"][0]) == {
        "constraint", "status", "measured", "limit", "gap", "text",
    }  # fmt: skip
    assert set(doc["runners_up"][0]) == {"label", "model", "meets_all", "fails", "unknown", "text"}


def test_rung_without_a_card() -> None:
    results, _ = ladder()
    advice = advise(results, Constraints(device="phone"), {})
    assert advice.recommended is None
    assert any("has no model card" in n for n in advice.notes)


def test_a_run_without_rungs_is_refused() -> None:
    with pytest.raises(DataError, match="holds no rungs"):
        parse_results(run_results([]))


def test_local_cost_is_the_one_compare_measured_unless_a_price_is_given() -> None:
    results, cards = ladder()
    results.rungs[0].cost_usd_per_1k = 0.0011
    results.rungs[0].cost.detail = "100.0 requests/s at 16 concurrent at $0.4/h"
    tiny = next(a for a in advise(results, Constraints(), cards).assessments if a.label == "tiny")
    assert tiny.cost_per_1k == pytest.approx(0.0011)
    assert "as `rung compare` measured it: 100.0 requests/s" in tiny.cost_basis
    # the user's own hourly price re-prices the measured throughput (10 requests/s here)
    priced = advise(results, Constraints(hourly_price=3.6), cards)
    tiny = next(a for a in priced.assessments if a.label == "tiny")
    assert tiny.cost_per_1k == pytest.approx(3.6 / 3600 / 100 * 1000)


def test_a_rung_no_better_than_guessing_is_never_recommended() -> None:
    from rung.runs import BaselineRow, Metric

    results, cards = ladder()
    # the tiny rung's interval reaches down to the 0.75 of always answering the majority class
    results = results.model_copy(
        update={
            "baselines": [
                BaselineRow(
                    name="majority class",
                    rule="always 'neutral'",
                    accuracy=Metric(value=0.75, ci95=(0.69, 0.81)),
                    macro_f1=Metric(value=0.29, ci95=(0.27, 0.31)),
                )
            ]
        }
    )
    assert not results.beats_guessing(results.rungs[0])
    assert results.beats_guessing(results.rungs[1])
    advice = advise(results, Constraints(min_accuracy=0.5), cards)
    assert advice.recommended is not None and advice.recommended.label == "mid"
    tiny = next(a for a in advice.assessments if a.label == "tiny")
    assert [c.constraint for c in tiny.fails] == ["beats_guessing"]
    assert (
        "no better than guessing (majority class (always 'neutral'): 0.750)" in tiny.fails[0].text
    )


def text_run(scores: dict[str, tuple[float, float, float]]) -> RunResults:
    """A summarize run: each rung's ROUGE-L and chrF (0-100, as sacrebleu reports it)."""
    from rung.runs.quality import Metric, TextQuality

    labels = list(scores)
    qualities = [
        TextQuality(
            scores={
                "rougeL": Metric(value=rouge, ci95=(low, high)),
                "chrf": Metric(value=rouge * 100, ci95=(low * 100, high * 100)),
            },
            primary="rougeL",
            scales={"chrf": 100.0},  # as the translate task declares and records it
        )
        for rouge, low, high in scores.values()
    ]
    results = run_results(
        [rung(label, 0.5, (0.4, 0.6), params=10 ** (7 + i)) for i, label in enumerate(labels)],
        labels=[],
    )
    return results.model_copy(
        update={
            "task": results.task.model_copy(update={"type": "summarize"}),
            "rungs": [
                r.model_copy(update={"quality": q})
                for r, q in zip(results.rungs, qualities, strict=True)
            ],
        }
    )


def test_text_run_advice_follows_a_quality_floor() -> None:
    results = text_run({"small": (0.30, 0.27, 0.33), "big": (0.42, 0.39, 0.45)})
    cards = {"small": local("small", 10**7, 10**7), "big": local("big", 10**8, 10**8)}
    # no floor: big is clearly better on rougeL (the primary), so it wins; no guessing check
    default = advise(results, Constraints(), cards)
    assert default.metric == "rougeL"
    assert default.recommended is not None and default.recommended.label == "big"
    assert all(c.constraint != "beats_guessing" for a in default.assessments for c in a.checks)
    # a floor small meets makes the smaller rung the answer
    low = advise(results, Constraints(min_quality={"rougeL": 0.25}), cards)
    assert low.recommended is not None and low.recommended.label == "small"
    assert any("rougeL 0.300 [0.27–0.33] meets the 0.25 floor" in r for r in low.reasons)
    high = advise(results, Constraints(min_quality={"rougeL": 0.35}), cards)
    assert high.recommended is not None and high.recommended.label == "big"
    assert any("Accepting 5.0 points less rougeL" in w for w in high.what_would_change)
    # chrF is read as a fraction: 30.0 is 0.300
    chrf = advise(results, Constraints(min_quality={"chrf": 0.35}), cards)
    assert chrf.recommended is not None and chrf.recommended.label == "big"
    doc = chrf.to_json()
    assert doc["constraints"]["min_quality"] == {"chrf": 0.35}
    assert doc["rungs"][0]["quality"]["chrf"]["value"] == pytest.approx(0.30)
    assert doc["rungs"][0]["accuracy"] is None


def test_a_floor_on_a_metric_the_run_did_not_measure_is_refused() -> None:
    from rung.errors import SpecError

    results = text_run({"small": (0.30, 0.27, 0.33)})
    with pytest.raises(SpecError, match=r"did not measure 'bleu'.*rougeL, chrf"):
        advise(results, Constraints(min_quality={"bleu": 0.2}), {})
