"""The REST endpoints: OpenAI-compatible ``/v1/chat/completions``, ``/v1/completions``,
``/v1/models`` and ``/v1/embeddings``; rung's ``/v1/classify`` and ``/v1/ask``; ``/healthz`` and ``/metrics``.

A model that classifies but does not generate (an encoder, a cascade) still answers chat and
completions: the reply is the label of the last user message, so any OpenAI client can call it.
Every response about a classification carries a ``rung`` object: the rung that answered, the
rungs it climbed from, its cost and what the top rung would have cost.

Streaming sends the reply as Server-Sent Events in OpenAI's chunk format, each chunk as soon as
the model's ``stream()`` makes it (token by token for models that ``can_stream``, at once for the
others), then a chunk with the finish reason and the ``rung`` object, the usage chunk when
``stream_options.include_usage`` asks for it, and ``data: [DONE]``. An error before the first
delta is an ordinary JSON error response; one after it is an ``error`` event that ends the
stream, as OpenAI does. A client that goes away stops the generation; what was generated until
then is what the request used.
"""

from __future__ import annotations

import base64
import contextlib
import json
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from rung.models.base import ChatMessage, GenerateRequest, GenerationDelta
from rung.route.cascade import CascadeModel
from rung.serve import ask as asking
from rung.serve.errors import ApiError, describe, error_body, error_response
from rung.serve.metrics import CONTENT_TYPE
from rung.serve.rungs import Answer, ServedModel, closing_stream
from rung.serve.state import ServeState, StreamTally, UsageSlot
from rung.serve.wire import (
    AskBody,
    ChatBody,
    ClassifyBody,
    CompletionBody,
    EmbeddingBody,
    read_json,
)

__all__ = [
    "ask",
    "chat_completions",
    "classify",
    "completions",
    "embeddings",
    "healthz",
    "list_models",
    "metrics",
    "retrieve_model",
]

Handler = Callable[[Request], Awaitable[Response]]
#: one chunk's choice: (text, finish reason) -> its JSON ("" text: the chat's role chunk)
ChunkChoice = Callable[[str | None, str | None], dict[str, Any]]
#: the ``rung`` object of a streamed reply, from its (tokens in, tokens out)
RungOf = Callable[[int, int], dict[str, Any]]


def _state(request: Request) -> ServeState:
    state: ServeState = request.app.state.rung
    return state


def _slot(request: Request) -> UsageSlot:
    slot = request.scope.get("rung.usage")
    if not isinstance(slot, UsageSlot):
        slot = request.scope["rung.usage"] = UsageSlot()
    return slot


def handles_errors(fn: Handler) -> Handler:
    """Every endpoint answers errors the same way (see rung.serve.errors)."""

    async def endpoint(request: Request) -> Response:
        try:
            return await fn(request)
        except Exception as e:
            return error_response(e)

    endpoint.__name__ = fn.__name__
    endpoint.__doc__ = fn.__doc__
    return endpoint


def rung_json(answer: Answer) -> dict[str, Any]:
    return {
        "answered_by": answer.rung,
        "climbed_from": answer.climbed_from,
        "cost_usd": answer.cost_usd,
        "top_rung_cost_usd": answer.top_rung_cost_usd,
        "errors": answer.errors,
    }


def _usage(tokens_in: int, tokens_out: int) -> dict[str, int]:
    return {
        "prompt_tokens": tokens_in,
        "completion_tokens": tokens_out,
        "total_tokens": tokens_in + tokens_out,
    }


# ---------------------------------------------------------------------------------------------
# Chat and completions


class _Reply:
    """One generated (or classified) reply, whichever way the model answers."""

    def __init__(
        self, text: str, tokens_in: int, tokens_out: int, finish: str, rung: dict[str, Any]
    ) -> None:
        self.text = text
        self.tokens_in = tokens_in
        self.tokens_out = tokens_out
        self.finish = finish
        self.rung = rung


def _generate_request(
    state: ServeState,
    messages: tuple[ChatMessage, ...],
    body: ChatBody | CompletionBody,
    max_tokens: int | None,
) -> GenerateRequest:
    return GenerateRequest(
        messages=messages,
        max_tokens=max_tokens or state.config.limits.default_max_tokens,
        temperature=body.temperature,
        stop=body.stops(),
    )


def _generated_rung(served: ServedModel, cost: float) -> dict[str, Any]:
    return {
        "answered_by": served.model_id,
        "climbed_from": [],
        "cost_usd": cost,
        "top_rung_cost_usd": cost,
        "errors": [],
    }


async def _reply(
    state: ServeState,
    served: ServedModel,
    messages: tuple[ChatMessage, ...],
    body: ChatBody | CompletionBody,
    max_tokens: int | None,
    slot: UsageSlot,
) -> _Reply:
    if served.can_generate:
        request = _generate_request(state, messages, body, max_tokens)
        generation, cost = await state.generate(served, request, slot)
        finish = generation.finish_reason or "stop"
        rung = slot.route or _generated_rung(served, cost)
        return _Reply(generation.text, generation.tokens_in, generation.tokens_out, finish, rung)
    users = [m.content for m in messages if m.role == "user"]
    if not users:
        raise ApiError(
            400,
            f"{served.name} classifies the last user message, and there is none: add one",
            param="messages",
        )
    [answer] = await state.classify(served, [users[-1]], None, slot)
    p = answer.prediction
    rung = rung_json(answer) | {"label": p.label, "confidence": p.confidence, "scores": p.scores}
    return _Reply(p.label or "", p.tokens_in, p.tokens_out, "stop", rung)


# -- streaming ---------------------------------------------------------------------------------


async def _start_stream(
    state: ServeState,
    served: ServedModel,
    messages: tuple[ChatMessage, ...],
    body: ChatBody | CompletionBody,
    max_tokens: int | None,
    slot: UsageSlot,
) -> tuple[AsyncIterator[GenerationDelta], RungOf]:
    """The reply's deltas, with the first one already made: whatever fails before it (a bad
    input, an upstream that refuses) is raised here, while the answer can still be a JSON
    error. A model that classifies streams its label as one delta."""
    if not served.can_generate or isinstance(served.model, CascadeModel):
        # a cascade decides which rung keeps the answer once it is whole: it comes as one delta
        reply = await _reply(state, served, messages, body, max_tokens, slot)
        return _whole(reply), lambda tokens_in, tokens_out: reply.rung
    deltas = state.stream(served, _generate_request(state, messages, body, max_tokens), slot)
    first = await anext(deltas, None)

    def rung(tokens_in: int, tokens_out: int) -> dict[str, Any]:
        return _generated_rung(served, served.cost(tokens_in, tokens_out))

    return _after(first, deltas), rung


async def _whole(reply: _Reply) -> AsyncIterator[GenerationDelta]:
    yield GenerationDelta(reply.text)
    yield GenerationDelta("", reply.finish, reply.tokens_in, reply.tokens_out)


async def _after(
    first: GenerationDelta | None, rest: AsyncIterator[GenerationDelta]
) -> AsyncIterator[GenerationDelta]:
    async with closing_stream(rest):
        if first is None:
            return
        yield first
        async for delta in rest:
            yield delta


def _sse(data: dict[str, Any] | str) -> str:
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {payload}\n\n"


async def _events(
    head: dict[str, Any],
    deltas: AsyncIterator[GenerationDelta],
    rung: RungOf,
    chunk: ChunkChoice,
    include_usage: bool,
) -> AsyncGenerator[str, None]:
    usage_field: dict[str, Any] = {"usage": None} if include_usage else {}
    if head["object"] == "chat.completion.chunk":
        yield _sse(head | {"choices": [chunk("", None)]} | usage_field)
    tally = StreamTally()
    try:
        async with closing_stream(deltas):
            async for delta in deltas:
                tally.add(delta)
                if delta.text:
                    yield _sse(head | {"choices": [chunk(delta.text, None)]} | usage_field)
    except Exception as e:
        # The status line is sent: as OpenAI does, an error event ends the stream, no [DONE].
        yield _sse(error_body(describe(e)))
        return
    tokens_in, tokens_out = tally.tokens
    finish = tally.finish_reason or "stop"
    yield _sse(
        head | {"choices": [chunk(None, finish)], "rung": rung(tokens_in, tokens_out)} | usage_field
    )
    if include_usage:
        yield _sse(head | {"choices": [], "usage": _usage(tokens_in, tokens_out)})
    yield _sse("[DONE]")


class _EventStream(StreamingResponse):
    """Server-sent events, each sent as soon as it is made. The events are closed (and with
    them the model's stream, which stops generating) when they end, when sending fails, or
    as soon as the client goes away, also while the model is still making the next token;
    so the request's usage is complete when the gateway logs it."""

    def __init__(self, events: AsyncGenerator[str, None]) -> None:
        super().__init__(
            events,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        self.events = events

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as group:

                async def watch() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    group.cancel_scope.cancel()

                group.start_soon(watch)
                # OSError: the client went away (servers of ASGI 2.4 say so when sending)
                with contextlib.suppress(OSError):
                    await self.stream_response(send)
                group.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await self.events.aclose()


@handles_errors
async def chat_completions(request: Request) -> Response:
    state, slot = _state(request), _slot(request)
    body = await read_json(request, ChatBody, state.config.limits)
    served = state.model(body.model, slot)
    max_tokens = body.max_completion_tokens or body.max_tokens
    head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": served.name}
    if body.stream:

        def chunk(piece: str | None, finish: str | None) -> dict[str, Any]:
            delta: dict[str, Any] = {}
            if piece == "":
                delta = {"role": "assistant", "content": ""}
            elif piece is not None:
                delta = {"content": piece}
            return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}

        deltas, rung = await _start_stream(state, served, body.chat(), body, max_tokens, slot)
        include = bool(body.stream_options and body.stream_options.include_usage)
        head |= {"object": "chat.completion.chunk", "system_fingerprint": None}
        return _EventStream(_events(head, deltas, rung, chunk, include))
    reply = await _reply(state, served, body.chat(), body, max_tokens, slot)
    return JSONResponse(
        head
        | {
            "object": "chat.completion",
            "system_fingerprint": None,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": reply.text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": reply.finish,
                }
            ],
            "usage": _usage(reply.tokens_in, reply.tokens_out),
            "rung": reply.rung,
        }
    )


@handles_errors
async def completions(request: Request) -> Response:
    state, slot = _state(request), _slot(request)
    body = await read_json(request, CompletionBody, state.config.limits)
    served = state.model(body.model, slot)
    prompts = body.prompts()
    state.check_inputs(prompts, "prompt")
    head = {
        "id": f"cmpl-{uuid.uuid4().hex}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": served.name,
    }
    # The contract generates from messages: a prompt is sent as one user message.
    if body.stream:
        if len(prompts) > 1:
            raise ApiError(400, "stream one prompt at a time", param="prompt")

        def chunk(piece: str | None, finish: str | None) -> dict[str, Any]:
            return {"index": 0, "text": piece or "", "logprobs": None, "finish_reason": finish}

        messages = (ChatMessage("user", prompts[0]),)
        deltas, rung = await _start_stream(state, served, messages, body, body.max_tokens, slot)
        include = bool(body.stream_options and body.stream_options.include_usage)
        return _EventStream(_events(head, deltas, rung, chunk, include))
    replies = [
        await _reply(state, served, (ChatMessage("user", p),), body, body.max_tokens, slot)
        for p in prompts
    ]
    return JSONResponse(
        head
        | {
            "system_fingerprint": None,
            "choices": [
                {"index": i, "text": r.text, "logprobs": None, "finish_reason": r.finish}
                for i, r in enumerate(replies)
            ],
            "usage": _usage(sum(r.tokens_in for r in replies), sum(r.tokens_out for r in replies)),
            "rung": [r.rung for r in replies] if len(replies) > 1 else replies[0].rung,
        }
    )


# ---------------------------------------------------------------------------------------------
# Models, embeddings, classify


@handles_errors
async def list_models(request: Request) -> Response:
    state = _state(request)
    return JSONResponse(
        {"object": "list", "data": [state.model_card(m) for m in state.models.values()]}
    )


@handles_errors
async def retrieve_model(request: Request) -> Response:
    state = _state(request)
    served = state.model(request.path_params["name"], _slot(request))
    return JSONResponse(state.model_card(served))


@handles_errors
async def embeddings(request: Request) -> Response:
    state, slot = _state(request), _slot(request)
    body = await read_json(request, EmbeddingBody, state.config.limits)
    served = state.model(body.model, slot)
    texts = body.texts()
    state.check_inputs(texts)
    vectors, tokens = await served.embed(texts)
    if body.dimensions is not None and body.dimensions != vectors.shape[1]:
        raise ApiError(
            400,
            f"{served.name} makes {vectors.shape[1]}-dimensional embeddings; leave out "
            f"dimensions or set it to {vectors.shape[1]}",
            param="dimensions",
        )
    cost = served.cost(sum(tokens), 0)
    slot.add(sum(tokens), 0, cost)
    slot.rung = served.model_id
    data = []
    for i, row in enumerate(vectors):
        embedding: Any = (
            base64.b64encode(row.astype("<f4").tobytes()).decode("ascii")
            if body.encoding_format == "base64"
            else row.tolist()
        )
        data.append({"object": "embedding", "index": i, "embedding": embedding})
    usage = {"prompt_tokens": sum(tokens), "total_tokens": sum(tokens)}
    return JSONResponse({"object": "list", "data": data, "model": served.name, "usage": usage})


@handles_errors
async def classify(request: Request) -> Response:
    """Label one text or a batch: each with its label, confidence, scores, the rung that
    answered, latency and cost."""
    state, slot = _state(request), _slot(request)
    body = await read_json(request, ClassifyBody, state.config.limits)
    served = state.model(body.model, slot)
    answers = await state.classify(served, body.texts(), body.labels, slot)
    data = [
        {
            "index": i,
            "label": a.prediction.label,
            "confidence": a.prediction.confidence,
            "scores": a.prediction.scores,
            "rung": a.rung,
            "climbed_from": a.climbed_from,
            "latency_ms": round(a.latency_ms, 3),
            "cost_usd": a.cost_usd,
            "top_rung_cost_usd": a.top_rung_cost_usd,
            "errors": a.errors,
        }
        for i, a in enumerate(answers)
    ]
    return JSONResponse(
        {
            "object": "list",
            "model": served.name,
            "data": data,
            "usage": _usage(slot.tokens_in, slot.tokens_out),
            "cost_usd": slot.cost_usd,
        }
    )


@handles_errors
async def ask(request: Request) -> Response:
    """Answer a question from an index's passages, with citations (see rung.serve.ask)."""
    state, slot = _state(request), _slot(request)
    body = await read_json(request, AskBody, state.config.limits)
    prepared = await asking.prepare(state, body, slot)
    if body.stream:
        return _EventStream(await asking.ask_events(state, prepared, slot))
    trace = await asking.answer(state, prepared, slot)
    return JSONResponse(asking.ask_json(prepared, trace))


# ---------------------------------------------------------------------------------------------
# Operations


@handles_errors
async def healthz(request: Request) -> Response:
    state = _state(request)
    breakers = {}
    for name, served in state.models.items():
        # a cascade reports which of its rungs it is skipping after failures
        breaker_state = served.model.breaker_state()
        if breaker_state is not None:
            breakers[name] = breaker_state
    return JSONResponse(
        {
            "status": "ok",
            "models": list(state.models),
            "uptime_s": round(time.time() - state.started, 3),
            "breakers": breakers,
        }
    )


@handles_errors
async def metrics(request: Request) -> Response:
    return Response(_state(request).metrics.render(), media_type=CONTENT_TYPE)
