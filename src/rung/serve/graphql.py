"""GraphQL at ``/graphql`` (Strawberry): query the models, the compare runs and the usage;
mutations to classify, to generate and to ask (grounded answers with citations).

The gateway has already checked the key (GraphQL sits behind the same access control as REST);
errors become GraphQL errors whose ``extensions`` carry the same status and code as REST's.
A key sees only its own usage; without keys (``auth.required: false``) usage covers everyone.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, cast

import strawberry
from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.scalars import JSON
from strawberry.types import Info

from rung.errors import RungError
from rung.models.base import ChatMessage, GenerateRequest
from rung.runs import RunFolder
from rung.serve import ask as asking
from rung.serve.errors import describe
from rung.serve.state import ServeState, UsageSlot
from rung.serve.wire import AskBody

__all__ = ["graphql_app"]

log = logging.getLogger("rung.serve")


@strawberry.type
class ServedModelInfo:
    name: str
    model_id: str
    can_classify: bool
    can_generate: bool
    can_embed: bool
    cascade: bool
    labels: list[str] | None


@strawberry.type
class RunRung:
    model: str
    label: str
    accuracy: float | None
    macro_f1: float | None
    latency_p50_ms: float | None
    cost_per_1k_usd: float | None


@strawberry.type
class Run:
    name: str
    path: str
    title: str | None
    created: str | None
    labels: list[str]
    n_test: int | None
    rungs: list[RunRung]
    results: JSON


@strawberry.type
class ModelUsage:
    model: str
    requests: int
    cost_usd: float


@strawberry.type
class RungUsage:
    rung: str
    requests: int


@strawberry.type
class Usage:
    requests: int
    tokens_in: int
    tokens_out: int
    cost_usd: float
    by_model: list[ModelUsage]
    by_rung: list[RungUsage]


@strawberry.type
class Classification:
    text: str
    label: str | None
    confidence: float | None
    scores: JSON
    rung: str
    climbed_from: list[str]
    latency_ms: float
    cost_usd: float | None
    top_rung_cost_usd: float | None


@strawberry.type
class GenerationResult:
    text: str
    tokens_in: int
    tokens_out: int
    finish_reason: str | None
    cost_usd: float
    rung: str


@strawberry.type
class FlowRun:
    flow: str
    version: str
    outputs: JSON
    trace: JSON
    latency_ms: float
    cost_usd: float | None


@strawberry.type
class CitedPassage:
    n: int
    id: str
    source: str
    start: int
    end: int
    text: str


@strawberry.type
class AskResult:
    answer: str
    citations: list[CitedPassage]
    grounded: JSON
    confidence: float
    from_context: bool
    rung: str
    climbed_from: list[str]
    index: str
    retrieved: list[str]
    tokens_in: int
    tokens_out: int
    cost_usd: float | None


def _ctx(info: Info) -> tuple[ServeState, UsageSlot]:
    return info.context["state"], info.context["slot"]


def _graphql_error(e: Exception) -> GraphQLError:
    error = describe(e)
    return GraphQLError(
        error.message,
        extensions={"status": error.status, "code": error.code, "type": error.type},
    )


def _run(folder: RunFolder) -> Run | None:
    try:
        results = folder.results()
    except RungError as e:
        log.warning("skipping run %s: %s", folder.path, e)
        return None
    rungs = []
    for r in results.rungs:
        metrics = r.quality.metrics()
        accuracy, macro_f1 = metrics.get("accuracy"), metrics.get("macro_f1")
        rungs.append(
            RunRung(
                model=r.model,
                label=r.label,
                accuracy=accuracy.value if accuracy else None,
                macro_f1=macro_f1.value if macro_f1 else None,
                latency_p50_ms=r.latency_ms.p50,
                cost_per_1k_usd=r.cost.usd_per_1k,
            )
        )
    return Run(
        name=folder.path.name,
        path=str(folder.path),
        title=results.name,
        created=results.created,
        labels=list(results.task.labels),
        n_test=results.task.n_test,
        rungs=rungs,
        results=cast(JSON, results.to_json()),
    )


@strawberry.type
class Query:
    @strawberry.field(description="The models this server serves.")
    def models(self, info: Info) -> list[ServedModelInfo]:
        state, _ = _ctx(info)
        return [
            ServedModelInfo(
                name=m.name,
                model_id=m.model_id,
                can_classify=m.model.can_classify,
                can_generate=m.can_generate,
                can_embed=m.can_embed,
                cascade=m.traced,
                labels=list(m.labels) if m.labels else None,
            )
            for m in state.models.values()
        ]

    @strawberry.field(description="Compare runs in the configured runs folder, newest first.")
    def runs(self, info: Info, limit: int = 20) -> list[Run]:
        state, _ = _ctx(info)
        root = state.runs_dir
        if not root.is_dir():
            return []
        folders = [f for p in root.iterdir() if (f := RunFolder(p)).results_path.is_file()]
        folders.sort(key=lambda f: f.results_path.stat().st_mtime, reverse=True)
        found = [run for f in folders[: max(0, limit)] if (run := _run(f)) is not None]
        return found

    @strawberry.field(description="The flows this server runs: name, version, inputs, steps.")
    def flows(self, info: Info) -> JSON:
        state, _ = _ctx(info)
        return cast(JSON, [f.to_json() for f in state.flows.list()])

    @strawberry.field(description="Requests, tokens and cost: the caller's key's, since a time.")
    async def usage(self, info: Info, since: datetime | None = None) -> Usage:
        state, slot = _ctx(info)
        assert state.gate is not None and state.ledger is not None
        await state.gate.flush()
        key_id = slot.principal.key_id if slot.principal else None
        if key_id is None and state.config.auth.required:
            raise GraphQLError("usage needs an API key", extensions={"status": 401})
        totals = await state.ledger.run(state.ledger.totals, key_id, since)
        return Usage(
            requests=totals.requests,
            tokens_in=totals.tokens_in,
            tokens_out=totals.tokens_out,
            cost_usd=totals.cost_usd,
            by_model=[
                ModelUsage(model=m, requests=n, cost_usd=c) for m, (n, c) in totals.by_model.items()
            ],
            by_rung=[RungUsage(rung=r, requests=n) for r, n in totals.by_rung.items()],
        )


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Label texts with a served model.")
    async def classify(
        self, info: Info, model: str, input: list[str], labels: list[str] | None = None
    ) -> list[Classification]:
        state, slot = _ctx(info)
        try:
            served = state.model(model, slot)
            answers = await state.classify(served, input, labels, slot)
        except Exception as e:
            raise _graphql_error(e) from e
        return [
            Classification(
                text=text,
                label=a.prediction.label,
                confidence=a.prediction.confidence,
                scores=cast(JSON, a.prediction.scores),
                rung=a.rung,
                climbed_from=a.climbed_from,
                latency_ms=a.latency_ms,
                cost_usd=a.cost_usd,
                top_rung_cost_usd=a.top_rung_cost_usd,
            )
            for text, a in zip(input, answers, strict=True)
        ]

    @strawberry.mutation(description="Generate a reply to a prompt with a served model.")
    async def generate(
        self,
        info: Info,
        model: str,
        prompt: str,
        system: str | None = None,
        max_tokens: int | None = None,
        temperature: float = 0.0,
    ) -> GenerationResult:
        state, slot = _ctx(info)
        messages = [ChatMessage("user", prompt)]
        if system:
            messages.insert(0, ChatMessage("system", system))
        try:
            served = state.model(model, slot)
            if not served.can_generate:
                raise GraphQLError(
                    f"{served.name} does not generate text: use the classify mutation",
                    extensions={"status": 400, "code": "model_cannot_generate"},
                )
            request = GenerateRequest(
                messages=tuple(messages),
                max_tokens=max_tokens or state.config.limits.default_max_tokens,
                temperature=temperature,
            )
            generation, cost = await state.generate(served, request, slot)
        except GraphQLError:
            raise
        except Exception as e:
            raise _graphql_error(e) from e
        return GenerationResult(
            text=generation.text,
            tokens_in=generation.tokens_in,
            tokens_out=generation.tokens_out,
            finish_reason=generation.finish_reason,
            cost_usd=cost,
            rung=served.model_id,
        )

    @strawberry.mutation(description="Run a served flow: its outputs, version and step trace.")
    async def run_flow(self, info: Info, name: str, inputs: JSON | None = None) -> FlowRun:
        from rung.serve.flows import run_recorded

        state, slot = _ctx(info)
        try:
            result = await run_recorded(state, name, dict(cast(dict[str, Any], inputs or {})), slot)
        except Exception as e:
            raise _graphql_error(e) from e
        data = result.to_json()
        return FlowRun(
            flow=result.flow,
            version=result.version,
            outputs=cast(JSON, data["outputs"]),
            trace=cast(JSON, data["trace"]),
            latency_ms=result.latency_ms,
            cost_usd=result.cost_usd,
        )

    @strawberry.mutation(
        description="Answer a question from an index's passages, with citations (as POST "
        "/v1/ask; a cascade climbs while its answer is not grounded enough)."
    )
    async def ask(
        self,
        info: Info,
        model: str,
        question: str,
        index: str | None = None,
        k: int | None = None,
        mode: str | None = None,
        min_confidence: float | None = None,
        max_tokens: int | None = None,
    ) -> AskResult:
        state, slot = _ctx(info)
        try:
            body = AskBody.model_validate(
                {
                    "model": model,
                    "question": question,
                    "index": index,
                    "k": k,
                    "mode": mode,
                    "min_confidence": min_confidence,
                    "max_tokens": max_tokens,
                }
            )
            prepared = await asking.prepare(state, body, slot)
            trace = await asking.answer(state, prepared, slot)
        except Exception as e:
            raise _graphql_error(e) from e
        a = trace.answer
        return AskResult(
            answer=a.text,
            citations=[
                CitedPassage(
                    n=c.number, id=c.id, source=c.source, start=c.start, end=c.end, text=c.text
                )
                for c in a.citations
            ],
            grounded=cast(JSON, a.grounding.to_json()),
            confidence=a.grounding.confidence,
            from_context=a.grounding.from_context,
            rung=trace.answered_by,
            climbed_from=trace.climbed_from,
            index=prepared.index,
            retrieved=[h.chunk.id for h in prepared.hits],
            tokens_in=trace.tokens_in,
            tokens_out=trace.tokens_out,
            cost_usd=trace.cost_usd,
        )


SCHEMA = strawberry.Schema(query=Query, mutation=Mutation)


class _RungGraphQL(GraphQL):
    def __init__(self, state: ServeState) -> None:
        super().__init__(SCHEMA, allow_queries_via_get=False)
        self.state = state

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Any:
        slot = request.scope.get("rung.usage")
        if not isinstance(slot, UsageSlot):
            slot = UsageSlot()
        return {"state": self.state, "slot": slot, "request": request, "response": response}


def graphql_app(state: ServeState) -> GraphQL:
    return _RungGraphQL(state)
