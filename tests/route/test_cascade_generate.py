"""A cascade that generates (confidence: tokens) with the bundled rungs: the small rung keeps
its answer when its mean token probability reaches its threshold, else the request climbs and
pays for both; failures climb; a cascade calibrated on labels still only classifies."""

from __future__ import annotations

import math
import socket
from collections.abc import Iterator, Mapping

import pytest

from rung.models import registry
from rung.models.base import ChatMessage, GenerateRequest, run_sync
from rung.route.cascade import CascadeModel

SMOL = "llamacpp:smollm2-135m-instruct"
GEMMA = "llamacpp:gemma-3-270m"
THREADS = {"n_threads": 1}
REQUEST = GenerateRequest(
    (ChatMessage("user", "Translate into English: Le chat dort sur le canapé."),), max_tokens=16
)


def _cascade(rungs: list[Mapping[str, object]], **options: object) -> Iterator[CascadeModel]:
    model = registry.create("cascade:gen", {"rungs": rungs, "confidence": "tokens", **options})
    assert isinstance(model, CascadeModel)
    model.load()
    try:
        yield model
    finally:
        model.close()


def _two(threshold: float) -> list[Mapping[str, object]]:
    return [
        {"model": SMOL, "options": THREADS, "threshold": threshold, "cost_usd_per_1k": 0.01},
        {"model": GEMMA, "options": THREADS, "cost_usd_per_1k": 0.1},
    ]


@pytest.fixture(scope="module")
def keeping() -> Iterator[CascadeModel]:
    yield from _cascade(_two(0.0))


@pytest.fixture(scope="module")
def climbing() -> Iterator[CascadeModel]:
    yield from _cascade(_two(1.0))


def test_a_sure_small_answer_is_kept_and_only_it_is_paid(keeping: CascadeModel) -> None:
    assert keeping.can_generate
    trace = run_sync(keeping.generate_traced(REQUEST))
    assert trace.answered_by == SMOL and trace.climbed_from == () and not trace.fallback
    [(rung, confidence)] = trace.tried
    assert rung == SMOL and confidence is not None and 0 < confidence < 1
    assert trace.generation.text and trace.tokens_out == trace.generation.tokens_out
    assert trace.cost_usd == pytest.approx(0.01 / 1000)
    assert trace.top_rung_cost_usd == pytest.approx(0.1 / 1000)


def test_an_unsure_answer_climbs_and_both_rungs_are_paid(climbing: CascadeModel) -> None:
    trace = run_sync(climbing.generate_traced(REQUEST))
    # no generation is sure of every token: under a threshold of 1 the small rung always climbs
    assert trace.answered_by == GEMMA and trace.climbed_from == (SMOL,)
    assert [r for r, _ in trace.tried] == [SMOL, GEMMA]
    assert all(c is not None and 0 < c < 1 for _, c in trace.tried)
    assert trace.cost_usd == pytest.approx((0.01 + 0.1) / 1000)
    assert trace.tokens_out > trace.generation.tokens_out > 0
    # the kept answer is what the top rung writes on its own
    alone = registry.create(GEMMA, THREADS)
    alone.load()
    try:
        assert run_sync(alone.generate(REQUEST)).text == trace.generation.text
    finally:
        alone.close()
    json_path = trace.route_json()
    assert json_path["answered_by"] == GEMMA and json_path["climbed_from"] == [SMOL]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_failing_rung_is_climbed_past_to_one_that_generates() -> None:
    dead = {
        "model": "openai:x",
        "label": "dead-api",
        "threshold": 0.0,
        "options": {"base_url": f"http://127.0.0.1:{_closed_port()}/v1", "max_retries": 0},
    }
    rungs = [
        dead,
        {"model": "encoder:minilm-l6", "threshold": 0.5},
        {"model": SMOL, "options": THREADS},
    ]
    for cascade in _cascade(rungs):
        trace = run_sync(cascade.generate_traced(REQUEST))
        assert trace.answered_by == SMOL
        assert [(e.rung, e.kind) for e in trace.errors] == [
            ("dead-api", "error"),
            ("encoder:minilm-l6", "skipped"),
        ]
        assert math.isfinite(trace.latency_ms)


def test_a_cascade_calibrated_on_labels_classifies_only() -> None:
    labels = registry.create("cascade:labels", {"rungs": _two(0.5)})
    assert isinstance(labels, CascadeModel) and not labels.can_generate
    encoders = registry.create(
        "cascade:enc",
        {"rungs": [{"model": "encoder:minilm-l6"}], "confidence": "tokens"},
    )
    assert not encoders.can_generate
