"""The cascade backend with real bundled rungs: who answers, and what happens when a rung fails."""

from __future__ import annotations

import socket
import time
from collections.abc import Mapping
from pathlib import Path

import pytest

from rung.errors import ModelAPIError, ModelNotFoundError, SpecError
from rung.models import registry
from rung.models.base import ClassifyRequest, run_sync
from rung.route.cascade import CascadeAnswer, CascadeModel
from rung.route.policy import decide
from rung.tasks.classify import ClassifyTask, build_requests, load_task_data

LABELS = ["negative", "neutral", "positive"]
SMOL = "llamacpp:smollm2-135m-instruct"


def _task(fpb_path: Path, test_size: int, train_size: int) -> ClassifyTask:
    return ClassifyTask.model_validate(
        {
            "data": {"path": str(fpb_path)},
            "labels": LABELS,
            "train_size": train_size,
            "test_size": test_size,
            "seed": 3,
            "prompt": {"shots": 1},
        }
    )


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _dead_api() -> dict[str, object]:
    return {
        "model": "openai:x",
        "label": "dead-api",
        "options": {"base_url": f"http://127.0.0.1:{_closed_port()}/v1", "max_retries": 0},
    }


def _cascade(options: Mapping[str, object], name: str = "t") -> CascadeModel:
    model = registry.create(f"cascade:{name}", dict(options))
    assert isinstance(model, CascadeModel)
    return model


def test_each_request_stops_at_the_first_rung_sure_enough(fpb_path: Path) -> None:
    task = _task(fpb_path, test_size=12, train_size=90)
    data = load_task_data(task, fpb_path.parent)
    requests = build_requests(task, data)
    cascade = _cascade(
        {
            "rungs": [
                {"model": "encoder:minilm-l6", "threshold": 0.9, "cost_usd_per_1k": 0.001},
                {"model": SMOL, "cost_usd_per_1k": 0.01},
            ]
        }
    )
    assert cascade.needs_training
    cascade.check()
    cascade.load()
    cascade.fit([ex.text for ex in data.train], [ex.label for ex in data.train], LABELS)
    try:
        answers = run_sync(cascade.classify_traced(requests))
        encoder, smol = cascade.rungs
        own_small = run_sync(encoder.classify(requests))
        own_large = run_sync(smol.classify(requests))
        plain = run_sync(cascade.classify(requests))
    finally:
        cascade.close()
    assert len(answers) == len(requests)
    by_rung = {a.answered_by for a in answers}
    assert by_rung == {"encoder:minilm-l6", SMOL}, [a.answered_by for a in answers]
    for answer, small, large, p in zip(answers, own_small, own_large, plain, strict=True):
        assert isinstance(answer, CascadeAnswer)
        assert answer.errors == () and not answer.fallback
        assert answer.top_rung_cost_usd == pytest.approx(0.01 / 1000)
        if decide(small.confidence, 0.9) == "answer":
            assert answer.answered_by == "encoder:minilm-l6" and answer.rung_index == 0
            assert answer.prediction.label == small.label
            assert answer.climbed_from == ()
            assert answer.cost_usd == pytest.approx(0.001 / 1000)
        else:
            assert answer.answered_by == SMOL and answer.rung_index == 1
            assert answer.prediction.label == large.label
            assert answer.climbed_from == ("encoder:minilm-l6",)
            assert answer.cost_usd == pytest.approx(0.011 / 1000)
        assert p.label == answer.prediction.label


def _one(fpb_path: Path) -> list[ClassifyRequest]:
    task = _task(fpb_path, test_size=3, train_size=30)
    return build_requests(task, load_task_data(task, fpb_path.parent))


def test_a_failing_rung_is_climbed_past_then_skipped_by_its_breaker(fpb_path: Path) -> None:
    requests = _one(fpb_path)
    cascade = _cascade(
        {
            "rungs": [{**_dead_api(), "threshold": 0.5}, {"model": SMOL}],
            "breaker": {"failures": 2, "cooldown_s": 60},
        }
    )
    assert not cascade.needs_training
    cascade.check()  # an endpoint down now is a warning: the cascade climbs past it
    assert cascade.check_warnings and "dead-api" in cascade.check_warnings[0]
    cascade.load()
    try:
        traces = [run_sync(cascade.classify_traced([r]))[0] for r in requests]
    finally:
        cascade.close()
    for trace in traces:
        assert trace.answered_by == SMOL and not trace.fallback
        assert trace.climbed_from == ("dead-api",)
        assert trace.prediction.label in LABELS
    assert [t.errors[0].kind for t in traces] == ["error", "error", "skipped"]
    assert "cannot reach" in traces[0].errors[0].message
    assert "circuit open after 2 failures" in traces[2].errors[0].message
    state = cascade.breaker_state()
    assert state[0]["open"] and state[0]["retry_in_s"] > 50
    assert not state[1]["open"]


def test_the_breaker_lets_a_request_through_after_its_cool_down(fpb_path: Path) -> None:
    requests = _one(fpb_path)[:1]
    now = [0.0]
    cascade = CascadeModel(
        "t",
        CascadeModel.Options.model_validate(
            {
                "rungs": [{**_dead_api(), "threshold": 0.5}, {"model": SMOL}],
                "breaker": {"failures": 1, "cooldown_s": 30},
            }
        ),
        clock=lambda: now[0],
    )
    cascade.load()
    try:
        kinds = []
        for at in (0.0, 10.0, 31.0, 32.0):
            now[0] = at
            kinds.append(run_sync(cascade.classify_traced(requests))[0].errors[0].kind)
    finally:
        cascade.close()
    # open at once; tried again after 30 s; that failure opens it again
    assert kinds == ["error", "skipped", "error", "skipped"]


def test_time_outs_climb_and_a_failed_top_falls_back_to_the_unsure_answer(
    fpb_path: Path,
) -> None:
    requests = _one(fpb_path)[:2]
    cascade = _cascade(
        {
            "rungs": [
                {"model": SMOL, "label": "impatient", "threshold": 0.0, "timeout_s": 0.0001},
                {"model": SMOL, "threshold": 1.0},
                _dead_api(),
            ],
            "breaker": {"failures": 10},
        }
    )
    cascade.load()
    try:
        answers = run_sync(cascade.classify_traced(requests))
    finally:
        cascade.close()
    for a in answers:
        assert [(e.rung, e.kind) for e in a.errors] == [
            ("impatient", "timeout"),
            ("dead-api", "error"),
        ]
        # the second rung is never sure enough (threshold 1), the top failed: its answer stands
        assert a.answered_by == SMOL and a.fallback
        assert a.climbed_from == ("impatient",)
        assert a.prediction.label in LABELS
        assert a.cost_usd is None  # a local rung without a cost figure
        assert a.top_rung_cost_usd is None


def test_no_answer_from_any_rung_is_an_error_naming_each_failure(fpb_path: Path) -> None:
    requests = _one(fpb_path)[:1]
    cascade = _cascade({"rungs": [_dead_api()]})
    cascade.load()
    try:
        with pytest.raises(ModelAPIError, match="no rung answered: dead-api: cannot reach"):
            run_sync(cascade.classify_traced(requests))
    finally:
        cascade.close()


def test_malformed_cascades_are_refused_with_what_to_fix() -> None:
    with pytest.raises(SpecError, match="has no threshold"):
        registry.create("cascade:x", {"rungs": [{"model": SMOL}, {"model": SMOL, "label": "b"}]})
    with pytest.raises(SpecError, match="remove its threshold"):
        registry.create("cascade:x", {"rungs": [{"model": SMOL, "threshold": 0.5}]})
    with pytest.raises(SpecError, match="listed twice"):
        registry.create(
            "cascade:x", {"rungs": [{"model": SMOL, "threshold": 0.5}, {"model": SMOL}]}
        )
    with pytest.raises(SpecError, match="rungs"):
        registry.create("cascade:x", {})
    with pytest.raises(ModelNotFoundError, match="unknown model provider 'llamcpp'"):
        registry.create("cascade:x", {"rungs": [{"model": "llamcpp:smollm2-135m-instruct"}]})
    # a wrong configuration of a rung is an error at check time, not a warning
    typo = registry.create("cascade:x", {"rungs": [{"model": "llamacpp:smollm2-135m-instruc"}]})
    with pytest.raises(ModelNotFoundError, match="did you mean"):
        typo.check()


def test_a_cascade_works_across_event_loops_and_is_fingerprinted_by_its_rungs(
    fpb_path: Path,
) -> None:
    requests = _one(fpb_path)[:1]
    opts = {"rungs": [{"model": SMOL}]}
    cascade = _cascade(opts)
    cascade.load()
    try:
        started = time.perf_counter()
        first = run_sync(cascade.classify(requests))
        second = run_sync(cascade.classify(requests))  # a new loop: new queues
        assert time.perf_counter() - started < 30
    finally:
        cascade.close()
    assert first[0].label == second[0].label
    other = _cascade({"rungs": [{"model": SMOL, "options": {"n_ctx": 1024}}]})
    assert cascade.fingerprint() != other.fingerprint()
    assert cascade.info().extra["rungs"][0]["model"] == SMOL
