"""Running a checked flow: each step in order, each recorded in a trace (latency, tokens, cost,
output), and the outputs filled in at the end.

A ``FlowRunner`` holds what the steps use, made once: the models (created through the
registry, checked and loaded in a worker thread), the retrievers, and one HTTP client. A model
is called by one step at a time (llama.cpp is not safe to call concurrently).

Which steps run: a step a route may pick runs only when a route picked it; a step that reads
other steps is skipped when every step it reads was skipped. A skipped step's output is nothing
(an empty text in a template). A step that fails ends the run with a FlowStepError naming it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from rung.catalog.costs import CostSpec, token_price
from rung.errors import DataError, ModelAPIError, RungError, SpecError
from rung.flows import expr
from rung.flows.check import Flow
from rung.flows.refs import render, to_text
from rung.flows.spec import (
    ClassifyStep,
    CodeStep,
    ExtractStep,
    HttpStep,
    ModelStep,
    PromptStep,
    RetrieveStep,
    RouteStep,
    Step,
)
from rung.models import registry
from rung.models.base import ChatMessage, ClassifyRequest, GenerateRequest, Model, stable_hash

__all__ = ["FlowResult", "FlowRunner", "FlowStepError", "StepTrace", "coerce_inputs"]

Status = Literal["ok", "skipped"]

_DEFAULT_INSTRUCTIONS = (
    "Classify the text into one of these labels: {labels}. Answer with the label only."
)


class FlowStepError(RungError):
    """A step of a flow failed while it ran. ``status`` is the HTTP status the server answers
    with: 400 for a bad input, 422 for an answer that does not fit an extract schema, 502 for
    a model API or a URL that failed, 500 otherwise."""

    def __init__(self, flow: str, step: str, message: str, status: int = 500) -> None:
        super().__init__(f"flow {flow!r}, step {step!r}: {message}")
        self.flow = flow
        self.step = step
        self.status = status


@dataclass
class StepTrace:
    """One step of a run, as the trace shows it."""

    id: str
    type: str
    status: Status
    latency_ms: float = 0.0
    tokens_in: int = 0
    tokens_out: int = 0
    #: USD: tokens at the model's price, or machine time for a self-hosted model; None unknown
    cost_usd: float | None = 0.0
    output: Any = None
    confidence: float | None = None
    model: str | None = None

    @property
    def skipped(self) -> bool:
        return self.status == "skipped"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "status": self.status,
            "latency_ms": round(self.latency_ms, 3),
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "cost_usd": self.cost_usd,
            "output": self.output,
            "confidence": self.confidence,
            "model": self.model,
        }


@dataclass
class FlowResult:
    flow: str
    version: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    trace: list[StepTrace]
    latency_ms: float

    @property
    def last(self) -> StepTrace | None:
        """The last step that ran."""
        ran = [t for t in self.trace if not t.skipped]
        return ran[-1] if ran else None

    @property
    def tokens(self) -> tuple[int, int]:
        return sum(t.tokens_in for t in self.trace), sum(t.tokens_out for t in self.trace)

    @property
    def cost_usd(self) -> float | None:
        costs = [t.cost_usd for t in self.trace if not t.skipped]
        return None if any(c is None for c in costs) else sum(c or 0.0 for c in costs)

    def to_json(self) -> dict[str, Any]:
        tokens_in, tokens_out = self.tokens
        return {
            "flow": self.flow,
            "version": self.version,
            "inputs": self.inputs,
            "outputs": self.outputs,
            "trace": [t.to_json() for t in self.trace],
            "latency_ms": round(self.latency_ms, 3),
            "tokens_in": tokens_in,
            "tokens_out": tokens_out,
            "cost_usd": self.cost_usd,
        }


def coerce_inputs(flow: Flow, given: Mapping[str, Any]) -> dict[str, Any]:
    """The caller's inputs checked against the flow's: every one known, each of its type
    (text from a command line or a form is converted), defaults filled in."""
    spec = flow.spec.inputs
    unknown = sorted(set(given) - set(spec))
    if unknown:
        raise DataError(
            f"flow {flow.name!r} has no input {unknown[0]!r}; its inputs: "
            f"{', '.join(spec) or 'none'}"
        )
    values: dict[str, Any] = {}
    for name, declared in spec.items():
        if name not in given or given[name] is None:
            if declared.default is None:
                raise DataError(f"flow {flow.name!r} needs the input {name!r} ({declared.type})")
            values[name] = declared.default
            continue
        value = given[name]
        try:
            if declared.type == "string":
                if not isinstance(value, str):
                    raise ValueError
            elif declared.type == "boolean":
                if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
                    value = value.lower() in ("true", "1")
                elif not isinstance(value, bool):
                    raise ValueError
            elif declared.type == "integer":
                if isinstance(value, bool | float):
                    raise ValueError
                value = int(value)
            else:
                if isinstance(value, bool):
                    raise ValueError
                value = float(value)
        except ValueError:
            raise DataError(
                f"input {name!r} of flow {flow.name!r} is a {declared.type}, got {value!r}"
            ) from None
        values[name] = value
    return values


_PLACEHOLDERS: dict[str, Any] = {
    "string": "...",
    "integer": 0,
    "number": 0.0,
    "boolean": False,
    "array": [],
    "object": {},
}


def _first_object(answer: str) -> dict[str, Any] | None:
    """The first JSON object in a model's answer (which may go on after it)."""
    decoder = json.JSONDecoder()
    start = answer.find("{")
    while start != -1:
        try:
            value, _ = decoder.raw_decode(answer, start)
        except ValueError:
            value = None
        if isinstance(value, dict):
            return value
        start = answer.find("{", start + 1)
    return None


class FlowRunner:
    """What a flow's steps use, made once; ``run`` as often as needed, concurrently too."""

    def __init__(self, flow: Flow, *, cost: CostSpec | None = None) -> None:
        self.flow = flow
        self.cost = cost or CostSpec()
        self._models: dict[str, Model] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._retrievers: dict[str, Any] = {}
        self._started = False

    # -- lifecycle ----------------------------------------------------------------------------

    def _model_key(self, model_id: str, options: dict[str, Any]) -> str:
        return stable_hash([model_id, options])

    def _where(self, step: Step, field: str, e: RungError) -> SpecError:
        index = next(i for i, s in enumerate(self.flow.spec.steps) if s.id == step.id)
        return self.flow.source.error(("steps", index, field), f"step {step.id!r}: {e}")

    def check(self) -> None:
        """What can be checked cheaply before a load: every model id is known and its files
        or settings are there (the backend's ``check``), every index exists. A problem is a
        SpecError naming file:line."""
        from rung.rag.search import index_location

        for step in self.flow.spec.steps:
            try:
                if isinstance(step, ModelStep | ClassifyStep | ExtractStep):
                    _usable(step, registry.create(step.model, step.options)).check()
                elif isinstance(step, RetrieveStep):
                    index_location(self.flow.resolve_path(step.index))
            except RungError as e:
                field = "index" if isinstance(step, RetrieveStep) else "model"
                raise self._where(step, field, e) from None

    def start(self) -> None:
        """Create, check and load every model and open every index the flow uses (sync and
        slow: call it from a worker thread in a server). A problem is a SpecError naming
        file:line."""
        if self._started:
            return
        for step in self.flow.spec.steps:
            try:
                self._start_step(step)
            except RungError as e:
                field = "index" if isinstance(step, RetrieveStep) else "model"
                raise self._where(step, field, e) from None
        self._started = True

    def _start_step(self, step: Step) -> None:
        from rung.rag.search import Retriever

        if isinstance(step, ModelStep | ClassifyStep | ExtractStep):
            key = self._model_key(step.model, step.options)
            if key not in self._models:
                model = _usable(step, registry.create(step.model, step.options))
                model.check()
                model.load()
                self._models[key] = model
        elif isinstance(step, RetrieveStep):
            index = self.flow.resolve_path(step.index)
            if index not in self._retrievers:
                retriever = Retriever.open(index)
                # the query embedder loads now, not in the first run's trace
                retriever.embedder.load()
                self._retrievers[index] = retriever

    async def astart(self) -> None:
        await asyncio.to_thread(self.start)

    async def aclose(self) -> None:
        for model in self._models.values():
            await model.aclose()
        for retriever in self._retrievers.values():
            retriever.close()
        self._models, self._retrievers = {}, {}
        self._started = False

    def models(self) -> list[Model]:
        return list(self._models.values())

    # -- a run ----------------------------------------------------------------------------------

    async def run(self, inputs: Mapping[str, Any]) -> FlowResult:
        if not self._started:
            await self.astart()
        values = coerce_inputs(self.flow, inputs)
        started = time.perf_counter()
        results: dict[str, StepTrace] = {}
        picked: set[str] = set()
        for step_id in self.flow.order:
            step = self.flow.step(step_id)
            if self._skips(step_id, results, picked):
                results[step_id] = StepTrace(step_id, step.type, "skipped", cost_usd=None)
                continue
            t0 = time.perf_counter()
            trace = await self._run_step(step, values, results)
            trace.latency_ms = (time.perf_counter() - t0) * 1000
            results[step_id] = trace
            if isinstance(step, RouteStep) and trace.output is not None:
                picked.add(trace.output)
        outputs = self._outputs(values, results)
        return FlowResult(
            self.flow.name,
            self.flow.version,
            values,
            outputs,
            [results[s] for s in self.flow.order],
            (time.perf_counter() - started) * 1000,
        )

    def _skips(self, step_id: str, results: Mapping[str, StepTrace], picked: set[str]) -> bool:
        if step_id in self.flow.routed_by and step_id not in picked:
            return True
        needs = self.flow.needs[step_id]
        return bool(needs) and all(results[n].skipped for n in needs)

    def _outputs(self, values: dict[str, Any], results: dict[str, StepTrace]) -> dict[str, Any]:
        if not self.flow.spec.outputs:
            ran = [t for t in results.values() if not t.skipped]
            return {"output": ran[-1].output if ran else None}
        return {k: render(v, values, results) for k, v in self.flow.spec.outputs.items()}

    def _error(self, step: Step, message: str, status: int = 500) -> FlowStepError:
        return FlowStepError(self.flow.name, step.id, message, status)

    async def _run_step(
        self, step: Step, values: dict[str, Any], results: dict[str, StepTrace]
    ) -> StepTrace:
        def text(template: str) -> str:
            return to_text(render(template, values, results))

        trace = StepTrace(step.id, step.type, "ok")
        try:
            if isinstance(step, PromptStep):
                trace.output = text(step.template)
            elif isinstance(step, RetrieveStep):
                retriever = self._retrievers[self.flow.resolve_path(step.index)]
                hits = await retriever.asearch(text(step.query), k=step.k, mode=step.mode)
                trace.output = [
                    {"text": h.chunk.text, "source": h.chunk.source, "score": h.score} for h in hits
                ]
            elif isinstance(step, ModelStep):
                messages = [ChatMessage("user", text(step.prompt))]
                if step.system:
                    messages.insert(0, ChatMessage("system", text(step.system)))
                request = GenerateRequest(tuple(messages), step.max_tokens, step.temperature)
                await self._generate(step.model, step.options, request, trace)
            elif isinstance(step, ClassifyStep):
                instructions = text(step.instructions or _DEFAULT_INSTRUCTIONS)
                await self._classify(step, text(step.text), instructions, trace)
            elif isinstance(step, ExtractStep):
                instructions = text(step.instructions) if step.instructions else ""
                await self._extract(step, text(step.text), instructions, trace)
            elif isinstance(step, RouteStep):
                trace.output = self._route(step, render(step.by, values, results))
            elif isinstance(step, HttpStep):
                await self._call(step, values, results, trace)
            elif isinstance(step, CodeStep):
                trace.output = expr.evaluate(expr.parse(step.expr), values, results)
        except FlowStepError:
            raise
        except expr.ExprError as e:
            raise self._error(step, str(e), 400) from None
        except DataError as e:
            raise self._error(step, str(e), 400) from None
        except ModelAPIError as e:
            raise self._error(step, str(e), 502) from None
        except RungError as e:
            raise self._error(step, str(e)) from None
        return trace

    def _model(self, model_id: str, options: dict[str, Any]) -> tuple[Model, asyncio.Lock]:
        key = self._model_key(model_id, options)
        lock = self._locks.setdefault(key, asyncio.Lock())
        return self._models[key], lock

    def _charge(self, model: Model, trace: StepTrace, seconds: float) -> None:
        trace.model = model.model_id
        if model.billing == "tokens":
            price, _ = token_price(model.model_id, self.cost)
            trace.cost_usd = (
                None
                if price is None
                else (
                    trace.tokens_in * price.input_per_mtok
                    + trace.tokens_out * price.output_per_mtok
                )
                / 1e6
            )
        else:
            # self-hosted: the machine's time for this call, at the cost spec's hourly price
            trace.cost_usd = seconds * self.cost.hourly() / 3600

    async def _generate(
        self, model_id: str, options: dict[str, Any], request: GenerateRequest, trace: StepTrace
    ) -> str:
        model, lock = self._model(model_id, options)
        t0 = time.perf_counter()
        async with lock:
            generation = await model.generate(request)
        trace.output = generation.text.strip()
        trace.tokens_in += generation.tokens_in
        trace.tokens_out += generation.tokens_out
        self._charge(model, trace, time.perf_counter() - t0)
        return generation.text

    async def _classify(
        self, step: ClassifyStep, text: str, instructions: str, trace: StepTrace
    ) -> None:
        model, lock = self._model(step.model, step.options)
        labels = tuple(step.labels)
        system = instructions.replace("{labels}", ", ".join(labels))
        request = ClassifyRequest(
            text, labels, (ChatMessage("system", system), ChatMessage("user", text))
        )
        t0 = time.perf_counter()
        async with lock:
            [prediction] = await model.classify([request])
        trace.output = prediction.label
        trace.confidence = prediction.confidence
        trace.tokens_in, trace.tokens_out = prediction.tokens_in, prediction.tokens_out
        self._charge(model, trace, time.perf_counter() - t0)

    async def _extract(
        self, step: ExtractStep, text: str, instructions: str, trace: StepTrace
    ) -> None:
        from jsonschema import Draft202012Validator

        # a filled-in skeleton is what small models follow; shown the schema itself, a 135M
        # model copies it back
        skeleton = json.dumps(
            {
                name: _PLACEHOLDERS.get(str(prop.get("type")), "...")
                for name, prop in step.schema_["properties"].items()
                if isinstance(prop, dict)
            },
            ensure_ascii=False,
        )
        prompt = (
            f"Text: {text}\n"
            + (f"{instructions}\n" if instructions else "")
            + f"Fill in this JSON from the text: {skeleton}"
        )
        request = GenerateRequest((ChatMessage("user", prompt),), step.max_tokens, 0.0)
        answer = await self._generate(step.model, step.options, request, trace)
        value = _first_object(answer)
        if not isinstance(value, dict):
            raise self._error(
                step, f"the model's answer holds no JSON object: {answer[:200]!r}", 422
            )
        problems = sorted(
            Draft202012Validator(step.schema_).iter_errors(value), key=lambda e: list(e.path)
        )
        if problems:
            where = ".".join(str(p) for p in problems[0].path) or "the object"
            raise self._error(
                step,
                f"the model's answer does not fit the schema: {where}: {problems[0].message}",
                422,
            )
        trace.output = value

    def _route(self, step: RouteStep, value: Any) -> str:
        if step.threshold is not None:
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise self._error(step, f"no confidence to compare with the threshold ({value!r})")
            assert step.above is not None and step.below is not None
            return step.above if value >= step.threshold else step.below
        label = to_text(value)
        if label in step.cases:
            return step.cases[label]
        if step.default is None:
            raise self._error(
                step,
                f"no case for {label!r} and no default: add one of {', '.join(step.cases)} "
                "or a default step",
                422,
            )
        return step.default

    async def _call(
        self,
        step: HttpStep,
        values: dict[str, Any],
        results: dict[str, StepTrace],
        trace: StepTrace,
    ) -> None:
        import httpx

        url = to_text(render(step.url, values, results))
        parts = urlsplit(url)
        if (
            parts.scheme not in ("http", "https")
            or (parts.hostname or "") not in step.allowed_hosts
        ):
            raise self._error(
                step,
                f"{url!r} is not an http(s) URL on an allowed host ({', '.join(step.allowed_hosts)})",
                400,
            )
        body = _render_json(step.json_, values, results) if step.json_ is not None else None
        try:
            # a client per call: a runner may be driven from more than one event loop (the
            # compare runner's), and a pooled client belongs to the loop that made it; no
            # redirects, since one could lead off the allowed hosts
            async with (
                httpx.AsyncClient(follow_redirects=False) as client,
                client.stream(
                    step.method,
                    url,
                    json=body,
                    headers={
                        k: to_text(render(v, values, results)) for k, v in step.headers.items()
                    },
                    timeout=step.timeout_s,
                ) as response,
            ):
                chunks = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > step.max_response_bytes:
                        raise self._error(
                            step,
                            f"the reply from {url} is over {step.max_response_bytes:,} bytes",
                            502,
                        )
                    chunks.append(chunk)
        except httpx.TimeoutException:
            raise self._error(
                step, f"{url} did not answer within {step.timeout_s:g} s", 504
            ) from None
        except httpx.HTTPError as e:
            raise self._error(step, f"{url} could not be reached: {e}", 502) from None
        if response.status_code >= 300:
            # redirects are not followed: they could lead off the allowed hosts
            raise self._error(step, f"{url} answered HTTP {response.status_code}", 502)
        raw = b"".join(chunks).decode("utf-8", errors="replace")
        try:
            trace.output = json.loads(raw) if raw else None
        except ValueError:
            trace.output = raw


def _usable(step: ModelStep | ClassifyStep | ExtractStep, model: Model) -> Model:
    """``model``, when it can do what ``step`` asks of it."""
    if isinstance(step, ModelStep | ExtractStep) and not model.can_generate:
        raise SpecError(f"{model.model_id} does not generate text: use a generative rung")
    if isinstance(step, ClassifyStep) and not model.can_classify:
        raise SpecError(f"{model.model_id} does not classify")
    if model.needs_training:
        raise SpecError(
            f"{model.model_id} needs training first: use a model folder written by `rung tune` "
            "(encoder:<folder>), or a generative rung"
        )
    return model


def _render_json(value: Any, values: dict[str, Any], results: dict[str, StepTrace]) -> Any:
    if isinstance(value, str):
        return render(value, values, results)
    if isinstance(value, dict):
        return {k: _render_json(v, values, results) for k, v in value.items()}
    if isinstance(value, list):
        return [_render_json(v, values, results) for v in value]
    return value
