"""The REST endpoints: OpenAI-compatible ``/v1/chat/completions``, ``/v1/completions``,
``/v1/models`` and ``/v1/embeddings``; rung's ``/v1/classify``; ``/healthz`` and ``/metrics``.

A model that classifies but does not generate (an encoder, a cascade) still answers chat and
completions: the reply is the label of the last user message, so any OpenAI client can call it.
Every response about a classification carries a ``rung`` object: the rung that answered, the
rungs it climbed from, its cost and what the top rung would have cost.

Streaming sends the reply as Server-Sent Events in OpenAI's chunk format, ending with
``data: [DONE]``. The backend contract generates a whole reply at once, so the chunks follow the
generation rather than the decoding: the first chunk arrives when the reply is complete.
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from rung.models.base import ChatMessage, GenerateRequest
from rung.serve.errors import ApiError, error_response
from rung.serve.metrics import CONTENT_TYPE
from rung.serve.rungs import Answer, ServedModel
from rung.serve.state import ServeState, UsageSlot
from rung.serve.wire import ChatBody, ClassifyBody, CompletionBody, EmbeddingBody, read_json

__all__ = [
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
_PIECES = re.compile(r"\s*\S+|\s+")


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


async def _reply(
    state: ServeState,
    served: ServedModel,
    messages: tuple[ChatMessage, ...],
    body: ChatBody | CompletionBody,
    max_tokens: int | None,
    slot: UsageSlot,
) -> _Reply:
    if served.can_generate:
        request = GenerateRequest(
            messages=messages,
            max_tokens=max_tokens or state.config.limits.default_max_tokens,
            temperature=body.temperature,
            stop=body.stops(),
        )
        generation, cost = await state.generate(served, request, slot)
        rung = {
            "answered_by": served.model_id,
            "climbed_from": [],
            "cost_usd": cost,
            "top_rung_cost_usd": cost,
            "errors": [],
        }
        finish = generation.finish_reason or "stop"
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


def _sse(data: dict[str, Any] | str) -> str:
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {payload}\n\n"


def _stream(
    head: dict[str, Any],
    reply: _Reply,
    chunk: Callable[[str | None, str | None], dict[str, Any]],
    include_usage: bool,
) -> StreamingResponse:
    async def events() -> AsyncIterator[str]:
        usage_field: dict[str, Any] = {"usage": None} if include_usage else {}
        for choice in [chunk("", None)] if head["object"] == "chat.completion.chunk" else []:
            yield _sse(head | {"choices": [choice]} | usage_field)
        for piece in _PIECES.findall(reply.text):
            yield _sse(head | {"choices": [chunk(piece, None)]} | usage_field)
        yield _sse(
            head | {"choices": [chunk(None, reply.finish)], "rung": reply.rung} | usage_field
        )
        if include_usage:
            yield _sse(head | {"choices": [], "usage": _usage(reply.tokens_in, reply.tokens_out)})
        yield _sse("[DONE]")

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@handles_errors
async def chat_completions(request: Request) -> Response:
    state, slot = _state(request), _slot(request)
    body = await read_json(request, ChatBody, state.config.limits)
    served = state.model(body.model, slot)
    reply = await _reply(
        state, served, body.chat(), body, body.max_completion_tokens or body.max_tokens, slot
    )
    head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": served.name}
    if body.stream:

        def chunk(piece: str | None, finish: str | None) -> dict[str, Any]:
            delta: dict[str, Any] = {}
            if piece == "":
                delta = {"role": "assistant", "content": ""}
            elif piece is not None:
                delta = {"content": piece}
            return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}

        include = bool(body.stream_options and body.stream_options.include_usage)
        return _stream(
            head | {"object": "chat.completion.chunk", "system_fingerprint": None},
            reply,
            chunk,
            include,
        )
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
    if body.stream and len(prompts) > 1:
        raise ApiError(400, "stream one prompt at a time", param="prompt")
    # The contract generates from messages: a prompt is sent as one user message.
    replies = [
        await _reply(state, served, (ChatMessage("user", p),), body, body.max_tokens, slot)
        for p in prompts
    ]
    head = {
        "id": f"cmpl-{uuid.uuid4().hex}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": served.name,
    }
    if body.stream:

        def chunk(piece: str | None, finish: str | None) -> dict[str, Any]:
            return {"index": 0, "text": piece or "", "logprobs": None, "finish_reason": finish}

        include = bool(body.stream_options and body.stream_options.include_usage)
        return _stream(head, replies[0], chunk, include)
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


# ---------------------------------------------------------------------------------------------
# Operations


@handles_errors
async def healthz(request: Request) -> Response:
    state = _state(request)
    breakers = {}
    for name, served in state.models.items():
        # a cascade reports which of its rungs it is skipping after failures
        breaker_state = getattr(served.model, "breaker_state", None)
        if callable(breaker_state):
            breakers[name] = breaker_state()
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
