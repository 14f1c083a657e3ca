"""The load test's two parts with real rungs: ModelRuntime (queue, micro-batching) in front of
the bundled MiniLM encoder and SmolLM2, run_level's closed loop and its bounds, and the API
path against InstantUpstreamDouble (benchmarks/upstream_double.py), a real HTTP server in its
own process that answers at once."""

from __future__ import annotations

import asyncio
import importlib.util
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import pytest

from rung.compare.load import run_level
from rung.models import registry
from rung.models.base import ClassifyRequest, Model, Prediction, run_sync
from rung.models.encoder import EncoderModel
from rung.models.llamacpp import LlamaCppModel
from rung.models.runtime import BatchPolicy, ModelRuntime
from rung.tasks.classify import ClassifyTask, DataSource, TaskData, build_requests
from rung.tasks.data import Example, read_examples

LABELS = ("negative", "neutral", "positive")
BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def split(fpb_path: Path) -> tuple[list[Example], list[Example]]:
    examples = read_examples(fpb_path)
    random.Random(0).shuffle(examples)
    return examples[:60], examples[60:92]


@pytest.fixture(scope="module")
def fpb_requests(
    fpb_path: Path, split: tuple[list[Example], list[Example]]
) -> list[ClassifyRequest]:
    """32 financial phrasebank sentences with the task's own prompt."""
    task = ClassifyTask(data=DataSource(path=fpb_path), labels=list(LABELS))
    return build_requests(task, TaskData(train=split[0], test=split[1], labels=LABELS))


@pytest.fixture(scope="module")
def encoder(split: tuple[list[Example], list[Example]]) -> EncoderModel:
    model = registry.create("encoder:minilm-l6", {"batch_size": 32})
    assert isinstance(model, EncoderModel)
    model.load()
    train = split[0]
    model.fit([ex.text for ex in train], [ex.label for ex in train], LABELS)
    return model


@pytest.fixture(scope="module")
def smollm() -> Iterator[LlamaCppModel]:
    model = registry.create("llamacpp:smollm2-135m-instruct", {"n_ctx": 1024, "n_threads": 2})
    assert isinstance(model, LlamaCppModel)
    model.load()
    yield model
    model.close()


# --- ModelRuntime -------------------------------------------------------------------------------


def test_runtime_micro_batches_the_encoder_and_answers_as_a_direct_call(
    encoder: EncoderModel, fpb_requests: list[ClassifyRequest]
) -> None:
    direct = run_sync(encoder.classify(fpb_requests))

    async def sixteen_callers() -> tuple[list[Prediction], ModelRuntime]:
        async with ModelRuntime(encoder) as runtime:
            assert runtime.policy == BatchPolicy(max_batch=32, max_wait_ms=2.0)

            async def caller(k: int) -> list[Prediction]:
                # Each caller sends its two requests one after the other, as a user would.
                return [await runtime.classify(r) for r in fpb_requests[k::16]]

            answers = await asyncio.gather(*(caller(k) for k in range(16)))
        by_request = [answers[i % 16][i // 16] for i in range(len(fpb_requests))]
        return by_request, runtime

    through_runtime, runtime = asyncio.run(sixteen_callers())
    assert runtime.batched_requests == len(fpb_requests) == 32
    # 16 callers at once share forward passes: typically two batches of 16.
    assert runtime.batches <= 8
    for a, b in zip(through_runtime, direct, strict=True):
        assert a.label == b.label
        assert a.scores.keys() == b.scores.keys()
        for label in LABELS:  # padding to another batch length moves the floats a little
            assert a.scores[label] == pytest.approx(b.scores[label], abs=1e-4)


def test_runtime_stop_cancels_requests_it_was_still_gathering(
    encoder: EncoderModel, fpb_requests: list[ClassifyRequest]
) -> None:
    """Requests the dispatcher took off the queue while it waited for a fuller batch are
    cancelled by stop(), not left waiting forever."""

    async def main() -> list[BaseException | Prediction]:
        runtime = ModelRuntime(encoder, BatchPolicy(max_batch=32, max_wait_ms=60_000))
        callers = [asyncio.create_task(runtime.classify(r)) for r in fpb_requests[:3]]
        await asyncio.sleep(0.05)  # the dispatcher now holds the three, waiting for more
        await runtime.stop()
        return await asyncio.wait_for(asyncio.gather(*callers, return_exceptions=True), 5)

    started = time.perf_counter()
    outcomes = asyncio.run(main())
    assert all(isinstance(o, asyncio.CancelledError) for o in outcomes)
    assert time.perf_counter() - started < 5


def test_runtime_calls_smollm2_one_request_at_a_time_and_stop_cancels_the_rest(
    smollm: LlamaCppModel, fpb_requests: list[ClassifyRequest]
) -> None:
    """llama.cpp does not batch: callers skip the queue but still reach the model one at a
    time; stop() cancels the one inside and those waiting for their turn."""
    direct = run_sync(smollm.classify(fpb_requests[:3]))

    async def main() -> tuple[list[Prediction], list[BaseException | Prediction], int]:
        async with ModelRuntime(smollm) as runtime:
            assert runtime.policy == BatchPolicy(max_batch=1, max_wait_ms=0.0)
            answers = await runtime.classify_many(fpb_requests[:3])
            batches = runtime.batches
            callers = [asyncio.create_task(runtime.classify(r)) for r in fpb_requests[3:6]]
            await asyncio.sleep(0.01)  # the first is in the model, two wait for the slot
        outcomes = await asyncio.wait_for(asyncio.gather(*callers, return_exceptions=True), 5)
        return answers, outcomes, batches

    answers, outcomes, batches = asyncio.run(main())
    assert batches == 3
    assert [a.label for a in answers] == [d.label for d in direct]
    for a, d in zip(answers, direct, strict=True):
        assert a.scores == pytest.approx(d.scores, abs=1e-4)
    assert all(isinstance(o, asyncio.CancelledError) for o in outcomes)


class _MiscountingModel(Model):
    """A backend with a bug: one prediction too few."""

    provider: ClassVar[str] = "miscounting"

    def load(self) -> None:
        pass

    async def classify(self, requests: Any) -> list[Prediction]:
        return [Prediction(label="positive") for _ in requests][:-1]


def test_runtime_turns_a_backend_miscount_into_an_error_for_its_callers(
    fpb_requests: list[ClassifyRequest],
) -> None:
    async def main() -> list[BaseException | Prediction]:
        async with ModelRuntime(_MiscountingModel("x")) as runtime:
            first = await asyncio.gather(runtime.classify(fpb_requests[0]), return_exceptions=True)
            # The dispatcher survived the first batch: the next caller is not left waiting.
            second = await asyncio.wait_for(
                asyncio.gather(runtime.classify(fpb_requests[1]), return_exceptions=True), 5
            )
            return [*first, *second]

    outcomes = asyncio.run(main())
    assert all(isinstance(o, RuntimeError) and "bug in its backend" in str(o) for o in outcomes)


# --- run_level on a local rung -------------------------------------------------------------------


def test_run_level_on_smollm2_at_one_and_four_users(
    smollm: LlamaCppModel, fpb_requests: list[ClassifyRequest]
) -> None:
    requests = fpb_requests[:8]

    async def levels() -> tuple[Any, Any, ModelRuntime]:
        async with ModelRuntime(smollm) as runtime:
            one = await run_level(runtime, requests, 1, max_requests=4, max_seconds=60)
            four = await run_level(runtime, requests, 4, max_requests=8, max_seconds=60)
        return one, four, runtime

    one, four, runtime = asyncio.run(levels())
    for level, n in ((one, 4), (four, 8)):
        assert level.requests == n
        assert level.errors == 0 and level.first_error is None and level.unfinished == 0
        assert 0 < level.latency_ms["p50"] <= level.latency_ms["p95"] <= level.latency_ms["p99"]
        assert level.throughput_per_s == pytest.approx(n / level.wall_s)
        assert level.output_tokens_per_s > 0
    # llama.cpp answers one request at a time: four users queue behind each other.
    assert runtime.batches == runtime.batched_requests == 12
    assert four.latency_ms["p50"] > 2 * one.latency_ms["p50"]
    assert four.to_json()["concurrency"] == 4


def test_run_level_stops_at_max_seconds(
    smollm: LlamaCppModel, fpb_requests: list[ClassifyRequest]
) -> None:
    async def level() -> Any:
        async with ModelRuntime(smollm) as runtime:
            return await run_level(runtime, fpb_requests, 4, max_requests=10_000, max_seconds=0.5)

    started = time.perf_counter()
    result = asyncio.run(level())
    took = time.perf_counter() - started
    assert result.wall_s == pytest.approx(0.5, abs=0.1)
    assert took < 1.5
    assert result.requests < 10_000
    # Four users were waiting when the time ran out: cut off, neither answered nor failed.
    assert 1 <= result.unfinished <= 4
    assert result.errors == 0


def test_run_level_refuses_empty_work(smollm: LlamaCppModel) -> None:
    runtime = ModelRuntime(smollm)
    with pytest.raises(ValueError, match="at least one request"):
        asyncio.run(run_level(runtime, [], 1, max_requests=1, max_seconds=1))


# --- run_level on an API rung --------------------------------------------------------------------


def _upstream_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "upstream_double", BENCHMARKS / "upstream_double.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def upstream() -> Iterator[Any]:
    with _upstream_module().InstantUpstreamDouble(label="positive") as double:
        yield double


def _api_level(base_url: str, requests: list[ClassifyRequest], users: int, n: int) -> Any:
    model = registry.create(
        "openai:double", {"base_url": base_url, "concurrency": users, "max_retries": 0}
    )
    model.check()
    model.load()

    async def level() -> Any:
        async with ModelRuntime(model) as runtime:
            return await run_level(runtime, requests, users, max_requests=n, max_seconds=30)

    return asyncio.run(level())


def test_run_level_against_an_instant_api_upstream(
    upstream: Any, fpb_requests: list[ClassifyRequest]
) -> None:
    before = upstream.stats()
    result = _api_level(upstream.base_url, fpb_requests, 8, 400)
    after = upstream.stats()
    assert result.requests == 400 and result.errors == 0
    assert after.completions - before.completions == 400
    assert result.output_tokens_per_s == pytest.approx(result.throughput_per_s)  # 1 token each
    # The body rung sent is the task's prompt, asking for logprobs to score the labels.
    assert '"logprobs":true' in after.last_body.replace(" ", "")
    assert "Classify the text" in after.last_body


def test_one_api_user_keeps_its_connection(
    upstream: Any, fpb_requests: list[ClassifyRequest]
) -> None:
    before = upstream.stats()
    result = _api_level(upstream.base_url, fpb_requests, 1, 20)
    assert result.requests == 20
    assert upstream.stats().connections - before.connections == 1
