"""What one running server holds, and the calls REST and GraphQL share: pick a model, check the
inputs against the limits, classify, generate or stream, and note what the request used."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rung.errors import did_you_mean
from rung.flows import FlowLibrary
from rung.models.base import GenerateRequest, Generation, GenerationDelta
from rung.route.cascade import CascadeModel
from rung.serve.auth import Gate, Principal
from rung.serve.config import ServeConfig
from rung.serve.errors import ApiError
from rung.serve.indexes import IndexPool
from rung.serve.ledger import Ledger
from rung.serve.metrics import Metrics
from rung.serve.rungs import Answer, ServedModel, close_models, closing_stream, load_models

__all__ = ["ServeState", "StreamTally", "UsageSlot"]


@dataclass
class UsageSlot:
    """What a request used, filled in by the handler and logged by the gateway."""

    principal: Principal | None = None
    model: str = "-"
    rung: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    #: the path a cascade's generation took (answered_by, climbed_from, costs), for the reply
    route: dict[str, Any] | None = None

    def add(self, tokens_in: int, tokens_out: int, cost_usd: float) -> None:
        self.tokens_in += tokens_in
        self.tokens_out += tokens_out
        self.cost_usd += cost_usd


@dataclass
class StreamTally:
    """What a stream has used so far: the last token counts its deltas reported (the last delta
    reports the whole generation's), else a completion token per text delta."""

    reported_in: int | None = None
    reported_out: int | None = None
    texts: int = 0
    finish_reason: str | None = None

    def add(self, delta: GenerationDelta) -> None:
        if delta.tokens_in is not None:
            self.reported_in = delta.tokens_in
        if delta.tokens_out is not None:
            self.reported_out = delta.tokens_out
        if delta.text:
            self.texts += 1
        self.finish_reason = delta.finish_reason or self.finish_reason

    @property
    def tokens(self) -> tuple[int, int]:
        """(tokens in, tokens out)."""
        out = self.reported_out if self.reported_out is not None else self.texts
        return self.reported_in or 0, out


@dataclass
class ServeState:
    config: ServeConfig
    ledger_url: str
    models: dict[str, ServedModel] = field(default_factory=dict)
    ledger: Ledger | None = None
    gate: Gate | None = None
    started: float = field(default_factory=time.time)
    #: the flows of the config's flows:, checked when the app is made (rung.serve.flows)
    flows: FlowLibrary = field(default_factory=lambda: FlowLibrary([]))
    metrics: Metrics = field(init=False)
    indexes: IndexPool = field(init=False)

    def __post_init__(self) -> None:
        self.metrics = Metrics(lambda: self.models)
        self.indexes = IndexPool(self.config)

    @property
    def runs_dir(self) -> Path:
        return self.config.resolve(self.config.runs_dir)

    async def start(self) -> None:
        import asyncio

        self.ledger = await asyncio.to_thread(Ledger, self.ledger_url)
        try:
            self.gate = Gate(self.ledger, self.config.auth, self.config.limits)
            self.models = await load_models(self.config)
            await self.flows.start()
            await self.indexes.warm()
            self.gate.start()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        if self.gate is not None:
            await self.gate.stop()
        await close_models(self.models)
        self.models = {}
        await self.flows.aclose()
        self.indexes.close()
        if self.ledger is not None:
            self.ledger.close()

    # -- shared by REST and GraphQL -------------------------------------------------------------

    def model(self, name: str, slot: UsageSlot | None = None) -> ServedModel:
        served = self.models.get(name)
        if served is None:
            # clients also send the backend id of a model served under another name
            served = next((m for m in self.models.values() if m.model_id == name), None)
        if served is None:
            known = ", ".join(self.models) or "none"
            raise ApiError(
                404,
                f"model {name!r} is not served here{did_you_mean(name, self.models)}; "
                f"served: {known} (GET /v1/models)",
                code="model_not_found",
                param="model",
            )
        if slot is not None:
            slot.model = served.name
        return served

    def check_inputs(self, texts: list[str], what: str = "input") -> None:
        limits = self.config.limits
        if not texts:
            raise ApiError(400, f"{what} is empty: send at least one text", param=what)
        if len(texts) > limits.max_batch:
            raise ApiError(
                413,
                f"{what} holds {len(texts)} texts, over the limit of {limits.max_batch} per "
                "request: split it into smaller batches",
                code="batch_too_large",
                param=what,
            )
        for i, text in enumerate(texts):
            if len(text) > limits.max_input_chars:
                where = f"{what}[{i}]" if len(texts) > 1 else what
                raise ApiError(
                    413,
                    f"{where} is {len(text):,} characters long, over the limit of "
                    f"{limits.max_input_chars:,}: shorten it",
                    code="input_too_long",
                    param=what,
                )

    async def classify(
        self, served: ServedModel, texts: list[str], labels: list[str] | None, slot: UsageSlot
    ) -> list[Answer]:
        self.check_inputs(texts)
        answers = await served.classify(texts, labels)
        rungs: list[str] = []
        for a in answers:
            slot.add(a.prediction.tokens_in, a.prediction.tokens_out, a.cost_usd or 0.0)
            self.metrics.answers.labels(served.name, a.rung).inc()
            if a.rung not in rungs:
                rungs.append(a.rung)
        slot.rung = ",".join(rungs)
        return answers

    def _within_limits(self, request: GenerateRequest) -> GenerateRequest:
        self.check_inputs(["\n".join(m.content for m in request.messages)], "messages")
        capped = min(request.max_tokens, self.config.limits.max_output_tokens)
        if capped != request.max_tokens:
            request = GenerateRequest(request.messages, capped, request.temperature, request.stop)
        return request

    async def generate(
        self, served: ServedModel, request: GenerateRequest, slot: UsageSlot
    ) -> tuple[Generation, float]:
        if isinstance(served.model, CascadeModel):
            return await self._cascade_generate(served, served.model, request, slot)
        generation = await served.generate(self._within_limits(request))
        cost = served.cost(generation.tokens_in, generation.tokens_out)
        slot.add(generation.tokens_in, generation.tokens_out, cost)
        slot.rung = served.model_id
        return generation, cost

    async def _cascade_generate(
        self, served: ServedModel, cascade: CascadeModel, request: GenerateRequest, slot: UsageSlot
    ) -> tuple[Generation, float]:
        """A cascade's generation: the request pays every rung it reached, and the reply says
        which rung kept the answer."""
        served.in_flight += 1
        try:
            trace = await cascade.generate_traced(self._within_limits(request))
        finally:
            served.in_flight -= 1
        cost = trace.cost_usd or 0.0
        slot.add(trace.tokens_in, trace.tokens_out, cost)
        slot.rung = trace.answered_by
        slot.route = trace.route_json()
        generation = replace(
            trace.generation, tokens_in=trace.tokens_in, tokens_out=trace.tokens_out
        )
        return generation, cost

    def stream(
        self, served: ServedModel, request: GenerateRequest, slot: UsageSlot
    ) -> AsyncIterator[GenerationDelta]:
        """The generation as it is made (the inputs are checked here, before the first delta
        is asked for). What it used goes to ``slot`` when it ends, also when it ends early:
        the last token counts the model reported, else a completion token per text delta."""
        return self._recorded(served, self._within_limits(request), slot)

    async def _recorded(
        self, served: ServedModel, request: GenerateRequest, slot: UsageSlot
    ) -> AsyncIterator[GenerationDelta]:
        tally = StreamTally()
        try:
            async with closing_stream(served.stream(request)) as deltas:
                async for delta in deltas:
                    tally.add(delta)
                    yield delta
        finally:
            tokens_in, tokens_out = tally.tokens
            slot.add(tokens_in, tokens_out, served.cost(tokens_in, tokens_out))
            slot.rung = served.model_id

    def model_card(self, served: ServedModel) -> dict[str, Any]:
        return {
            "id": served.name,
            "object": "model",
            "created": int(self.started),
            "owned_by": "rung",
            "rung": served.describe(),
        }
