"""``/v1/ask`` and GraphQL's ``ask``: a question answered from the passages an index returns,
with the chunks it cites and how grounded it is.

    {"question": "How do I return an item?", "model": "smollm2", "index": "faq", "k": 4}
    -> {"answer": "... [1]", "citations": [{"id", "source", "start", "end", "text"}],
        "grounded": {"confidence": 1.0, "from_context": true, ...},
        "rung": {"answered_by", "climbed_from", ...}, "usage": {...}, "cost_usd": 0.0}

Indexes are the serve config's ``indexes:`` (``rung.serve.indexes``). A cascade answers through ``rung.route.answer``: the smallest rung that
generates first, climbing while the grounded confidence is under ``min_confidence`` (or, for a
cascade calibrated on an answer run, ``confidence: grounded``, under each rung's own threshold).

Streaming sends ``ask.chunk`` events: text deltas as the model makes them (a plain model; a
cascade decides which rung keeps the answer before it can send any, so its answer comes as one
delta), then one event with ``finish_reason`` and the whole answer with its citations,
grounding, rung and usage, then ``data: [DONE]``.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

from rung.models.base import Generation, GenerationDelta
from rung.rag.answer import ABSTAIN, GroundedAnswer, answer_request, reply_of
from rung.rag.stores import Hit
from rung.route.answer import AnswerRung, AnswerTrace, cascade_rungs, climb_answer
from rung.route.cascade import CascadeModel
from rung.serve.errors import ApiError, describe, error_body
from rung.serve.rungs import ServedModel, closing_stream
from rung.serve.state import ServeState, StreamTally, UsageSlot
from rung.serve.wire import AskBody

__all__ = ["Asking", "answer", "ask_events", "ask_json", "prepare"]

log = logging.getLogger("rung.serve")


@dataclass
class Asking:
    """A checked question: the model, the passages, and the settings to answer with."""

    question: str
    served: ServedModel
    index: str
    hits: list[Hit]
    ladder: list[AnswerRung]
    min_confidence: float
    min_overlap: float
    max_tokens: int


def _ladder(served: ServedModel) -> list[AnswerRung]:
    # A cascade answers rung by rung; any other model is a ladder of one.
    if isinstance(served.model, CascadeModel):
        return cascade_rungs(served.model)
    return [AnswerRung(served.model_id, served.model, None, served.cost)]


async def prepare(state: ServeState, body: AskBody, slot: UsageSlot) -> Asking:
    """Everything that can be refused with a 4xx, before the model is asked."""
    if not body.question.strip():
        raise ApiError(400, "question is empty: ask something", param="question")
    state.check_inputs([body.question], "question")
    served = state.model(body.model, slot)
    ladder = _ladder(served)
    if body.min_confidence is not None:
        # the request's own floor stands for every rung, over a calibrated cascade's thresholds
        ladder = [replace(r, threshold=None) for r in ladder]
    if not any(r.model.can_generate for r in ladder):
        raise ApiError(
            400,
            f"{served.name} ({served.model_id}) does not generate text, so it cannot answer: "
            "ask with a generative model or a cascade with one",
            code="model_cannot_generate",
            param="model",
        )
    spec = state.config.ask
    index = state.indexes.name_for(body.index)
    hits = await state.indexes.search(
        index, body.question, body.k or spec.k, body.mode or spec.mode
    )
    max_tokens = min(body.max_tokens or spec.max_tokens, state.config.limits.max_output_tokens)
    return Asking(
        question=body.question,
        served=served,
        index=index,
        hits=hits,
        ladder=ladder,
        min_confidence=body.min_confidence
        if body.min_confidence is not None
        else spec.min_confidence,
        min_overlap=spec.min_overlap,
        max_tokens=max_tokens,
    )


def _nothing_found(asking: Asking) -> AnswerTrace:
    """No passage came back: the answer is that the documents do not say, from no model."""
    answer = reply_of(Generation(f"{ABSTAIN}.", 0, 0, "stop"), [])
    return AnswerTrace(answer, "-", [], [], 0.0, 0, 0)


def _record(state: ServeState, asking: Asking, trace: AnswerTrace, slot: UsageSlot) -> None:
    slot.add(trace.tokens_in, trace.tokens_out, trace.cost_usd or 0.0)
    slot.rung = trace.answered_by
    state.metrics.answers.labels(asking.served.name, trace.answered_by).inc()


async def answer(state: ServeState, asking: Asking, slot: UsageSlot) -> AnswerTrace:
    if not asking.hits:
        return _nothing_found(asking)
    asking.served.in_flight += 1
    try:
        trace = await climb_answer(
            asking.ladder,
            asking.question,
            asking.hits,
            min_confidence=asking.min_confidence,
            max_tokens=asking.max_tokens,
            min_overlap=asking.min_overlap,
        )
    finally:
        asking.served.in_flight -= 1
    _record(state, asking, trace, slot)
    return trace


def ask_json(asking: Asking, trace: AnswerTrace) -> dict[str, Any]:
    a = trace.answer
    return {
        "object": "ask",
        "model": asking.served.name,
        "index": asking.index,
        "question": asking.question,
        "answer": a.text,
        "citations": [c.to_json() for c in a.citations],
        "grounded": a.grounding.to_json(),
        "retrieved": [
            {"id": h.chunk.id, "source": h.chunk.source, "score": round(h.score, 6)}
            for h in asking.hits
        ],
        "rung": {
            "answered_by": trace.answered_by,
            "climbed_from": trace.climbed_from,
            "tried": [{"rung": r, "confidence": round(c, 4)} for r, c in trace.tried],
            "fallback": trace.fallback,
            "errors": [str(e) for e in trace.errors],
        },
        "cost_usd": trace.cost_usd,
        "usage": {
            "prompt_tokens": trace.tokens_in,
            "completion_tokens": trace.tokens_out,
            "total_tokens": trace.tokens_in + trace.tokens_out,
        },
        "finish_reason": a.finish_reason,
    }


def _sse(data: dict[str, Any] | str) -> str:
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {payload}\n\n"


async def ask_events(
    state: ServeState, asking: Asking, slot: UsageSlot
) -> AsyncGenerator[str, None]:
    """The answer's events, with whatever can fail before the first delta already done (so
    that it is still a JSON error response)."""
    head = {"id": f"ask-{uuid.uuid4().hex}", "object": "ask.chunk", "created": int(time.time())}
    single = len(asking.ladder) == 1 and asking.ladder[0].model is asking.served.model
    if not asking.hits or not single:
        trace = await answer(state, asking, slot)
        return _whole(head, asking, trace)
    request = answer_request(asking.question, asking.hits, asking.max_tokens)
    deltas = state.stream(asking.served, request, slot)
    first = await anext(deltas, None)
    return _streamed(head, state, asking, first, deltas)


async def _whole(
    head: dict[str, Any], asking: Asking, trace: AnswerTrace
) -> AsyncGenerator[str, None]:
    if trace.answer.text:
        yield _sse(head | {"delta": trace.answer.text})
    yield _sse(head | {"delta": ""} | ask_json(asking, trace) | {"object": "ask.chunk"})
    yield _sse("[DONE]")


async def _streamed(
    head: dict[str, Any],
    state: ServeState,
    asking: Asking,
    first: GenerationDelta | None,
    rest: AsyncIterator[GenerationDelta],
) -> AsyncGenerator[str, None]:
    tally = StreamTally()
    pieces: list[str] = []
    try:
        async with closing_stream(rest):
            delta = first
            while delta is not None:
                tally.add(delta)
                if delta.text:
                    pieces.append(delta.text)
                    yield _sse(head | {"delta": delta.text})
                delta = await anext(rest, None)
    except Exception as e:
        yield _sse(error_body(describe(e)))  # the status line is sent: an error event ends it
        return
    tokens_in, tokens_out = tally.tokens
    generation = Generation("".join(pieces), tokens_in, tokens_out, tally.finish_reason or "stop")
    grounded: GroundedAnswer = reply_of(generation, asking.hits, min_overlap=asking.min_overlap)
    rung = asking.ladder[0]
    trace = AnswerTrace(
        grounded,
        rung.name,
        [],
        [],
        rung.cost(tokens_in, tokens_out),
        tokens_in,
        tokens_out,
        tried=[(rung.name, grounded.grounding.confidence)],
    )
    # the tokens and cost went to the slot as the stream ended (ServeState.stream)
    state.metrics.answers.labels(asking.served.name, trace.answered_by).inc()
    yield _sse(head | {"delta": ""} | ask_json(asking, trace) | {"object": "ask.chunk"})
    yield _sse("[DONE]")
