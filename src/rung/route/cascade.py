"""The ``cascade`` backend: a ladder of rungs served as one model, the small one first.

``cascade:<name>`` lists rungs from small to large, each with a confidence threshold (the last
has none). A request goes to the first rung and climbs while the answering rung's confidence is
below its threshold (``rung.route.policy.decide``, the rule ``route calibrate`` picks thresholds
for). It also climbs when a rung fails or does not answer within its time-out. A rung that
failed ``breaker.failures`` times in a row is skipped for ``breaker.cooldown_s`` seconds (a
circuit breaker), so a dead endpoint does not add its time-out to every request; after the
cool-down the next request tries it again, and one more failure opens the breaker again.

When every rung above an unsure answer fails, that unsure answer is returned (marked
``fallback``) rather than nothing; when no rung answered at all, the request fails with a
ModelAPIError naming every rung's error.

Each rung runs behind its own ``ModelRuntime`` (bound to the running event loop), so a
llama.cpp rung is never called concurrently and an encoder rung micro-batches concurrent
requests, whoever calls the cascade.

``classify()`` returns the Predictions, as every backend does; ``classify_traced()`` returns, per
request, which rung answered, the rungs it climbed past and why, what the request cost, and
what it would have cost on the top rung. Costs come from each rung's ``cost_usd_per_1k`` (``rung
route calibrate`` writes the figure of the compare run) or, for rungs paid per token without one
(``Model.billing``), from the tokens the rung reported and its price per token. A rung that
failed is counted as free.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rung.errors import ModelAPIError, RungError, SpecError
from rung.models import registry
from rung.models.base import (
    ClassifyRequest,
    GenerateRequest,
    Generation,
    Model,
    ModelInfo,
    Prediction,
    stable_hash,
)
from rung.models.runtime import ModelRuntime
from rung.route.policy import decide

__all__ = [
    "BreakerOptions",
    "CascadeAnswer",
    "CascadeGeneration",
    "CascadeModel",
    "CascadeOptions",
    "CascadeRung",
    "RungFailure",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

#: classify calls a caller may have in flight at once, at least
MIN_CONCURRENCY = 4
#: what a cascade's thresholds are read against; see CascadeOptions.confidence
Confidence = Literal["label", "tokens", "grounded"]


class CascadeRung(BaseModel):
    """One rung of a cascade."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="Model id, e.g. encoder:minilm-l6 or openai:gpt-4o-mini.")
    options: dict[str, Any] = Field(default_factory=dict, description="The backend's options.")
    threshold: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="The rung keeps its answer when its confidence is at or above this; "
        "below it (or when the rung cannot tell), the request climbs. None for the last rung.",
    )
    label: str | None = Field(
        default=None,
        description="Name in traces and reports (default: the model id); for `rung route "
        "simulate`, the rung's label in the compare run.",
    )
    cost_usd_per_1k: float | None = Field(
        default=None,
        ge=0,
        description="Cost of 1,000 requests on this rung (route calibrate copies the compare "
        "run's figure). Default: API rungs are priced per token, other rungs are unknown.",
    )
    timeout_s: float | None = Field(
        default=None, gt=0, description="Time-out of this rung (default: the cascade's)."
    )

    @property
    def display(self) -> str:
        return self.label or self.model


class BreakerOptions(BaseModel):
    """When a failing rung is skipped."""

    model_config = ConfigDict(extra="forbid")

    failures: int = Field(
        default=3, ge=1, description="Consecutive failures (errors or time-outs) that open it."
    )
    cooldown_s: float = Field(
        default=30.0, ge=0, description="Seconds the rung is skipped once the breaker opens."
    )


class CascadeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rungs: list[CascadeRung] = Field(
        min_length=1, description="The rungs from small to large; the last has no threshold."
    )
    timeout_s: float | None = Field(
        default=None,
        gt=0,
        description="Seconds a rung may take to answer (waiting in its queue included) before "
        "the request climbs; None: no time-out.",
    )
    breaker: BreakerOptions = Field(default_factory=BreakerOptions)
    confidence: Confidence = Field(
        default="label",
        description="What the thresholds measure. label: a classifier's probability of its "
        "label (the cascade classifies, also on /v1/chat/completions). tokens: a generation's "
        "mean token probability (the cascade generates on /v1/chat/completions and "
        "/v1/completions, climbing while it is under the rung's threshold; `rung route "
        "calibrate` on a summarize, translate or extract run writes it). grounded: an answer's "
        "grounded confidence (/v1/ask keeps a rung's answer at its own threshold instead of "
        "ask.min_confidence; route calibrate on an answer run writes it).",
    )

    @model_validator(mode="after")
    def _thresholds(self) -> CascadeOptions:
        for i, rung in enumerate(self.rungs[:-1]):
            if rung.threshold is None:
                raise ValueError(
                    f"rung {i + 1} ({rung.display}) has no threshold: every rung but the last "
                    "needs one (the confidence at or above which it answers; `rung route "
                    "calibrate` picks them)"
                )
        last = self.rungs[-1]
        if last.threshold is not None:
            raise ValueError(
                f"the last rung ({last.display}) has a threshold: it answers whatever reaches "
                "it; remove its threshold"
            )
        names = [r.display for r in self.rungs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"rungs listed twice: {', '.join(dupes)}; give each a distinct label")
        return self


@dataclass(frozen=True)
class RungFailure:
    rung: str
    kind: Literal["error", "timeout", "skipped"]
    message: str

    def to_json(self) -> dict[str, str]:
        return {"rung": self.rung, "kind": self.kind, "message": self.message}

    def __str__(self) -> str:
        return f"{self.rung}: {self.kind}: {self.message}"


@dataclass
class CascadeAnswer:
    """A request's path through the cascade."""

    prediction: Prediction
    answered_by: str
    rung_index: int
    #: the rungs below the answering one that the request passed (unsure, failed or skipped)
    climbed_from: tuple[str, ...]
    #: every failure on the way, above a fallback answer too
    errors: tuple[RungFailure, ...]
    #: what the request cost: every rung that answered it; None when a rung's cost is unknown
    cost_usd: float | None
    #: what it would have cost had it gone straight to the top rung
    top_rung_cost_usd: float | None
    latency_ms: float
    #: answered below its threshold because every rung above failed
    fallback: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "prediction": self.prediction.to_json(),
            "answered_by": self.answered_by,
            "rung_index": self.rung_index,
            "climbed_from": list(self.climbed_from),
            "errors": [e.to_json() for e in self.errors],
            "cost_usd": self.cost_usd,
            "top_rung_cost_usd": self.top_rung_cost_usd,
            "latency_ms": self.latency_ms,
            "fallback": self.fallback,
        }


@dataclass
class _Breaker:
    failures: int
    cooldown_s: float
    consecutive: int = 0
    open_until: float = 0.0

    def is_open(self, now: float) -> bool:
        return now < self.open_until

    def failed(self, now: float) -> None:
        self.consecutive += 1
        if self.consecutive >= self.failures:
            self.open_until = now + self.cooldown_s

    def succeeded(self) -> None:
        self.consecutive = 0
        self.open_until = 0.0


@dataclass
class _Path:
    """What one request met on its way up."""

    passed: list[str] = field(default_factory=list)
    failures: list[RungFailure] = field(default_factory=list)
    answers: dict[int, Prediction] = field(default_factory=dict)


@dataclass(frozen=True)
class CascadeGeneration:
    """A generation's path through the cascade: the kept rung's answer and what it cost."""

    generation: Generation
    answered_by: str
    #: the rungs below the answering one that the request passed (unsure, failed or skipped)
    climbed_from: tuple[str, ...]
    errors: tuple[RungFailure, ...]
    #: every rung that generated; None when a rung's cost is unknown
    cost_usd: float | None
    #: what it would have cost on the top rung (its own answer's tokens, or the kept one's)
    top_rung_cost_usd: float | None
    #: tokens of every generation the request made on the way
    tokens_in: int
    tokens_out: int
    #: (rung, mean token probability) of every generation made, the kept one last
    tried: tuple[tuple[str, float | None], ...]
    latency_ms: float
    #: kept below its threshold because every rung above failed
    fallback: bool = False

    def route_json(self) -> dict[str, Any]:
        """The path as a response's ``rung`` object shows it."""
        return {
            "answered_by": self.answered_by,
            "climbed_from": list(self.climbed_from),
            "cost_usd": self.cost_usd,
            "top_rung_cost_usd": self.top_rung_cost_usd,
            "errors": [e.to_json() for e in self.errors],
            "tried": [{"rung": r, "confidence": c} for r, c in self.tried],
            "fallback": self.fallback,
        }


class CascadeModel(Model):
    """Rungs from small to large behind one model id; see the module docstring."""

    provider: ClassVar[str] = "cascade"
    Options: ClassVar[type[BaseModel]] = CascadeOptions
    can_trace: ClassVar[bool] = True

    def __init__(
        self,
        name: str,
        options: BaseModel | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if options is None:
            raise SpecError(
                f"cascade:{name} needs its rungs: give options {{rungs: [{{model, threshold}}, "
                "..., {model}]}} (`rung route calibrate` writes them)"
            )
        super().__init__(name, options)
        assert isinstance(self.options, CascadeOptions)
        self.opts: CascadeOptions = self.options
        self.rungs: list[Model] = [registry.create(r.model, r.options) for r in self.opts.rungs]
        self.names = [r.display for r in self.opts.rungs]
        # Each rung has its own queue (see _runtime), so the cascade itself is safe to call
        # concurrently: batches that stop at the small rung need not wait for one that climbs.
        self.max_concurrency = max(MIN_CONCURRENCY, *(m.max_concurrency for m in self.rungs))
        self.check_warnings: list[str] = []
        self._clock = clock
        self._breakers = [
            _Breaker(self.opts.breaker.failures, self.opts.breaker.cooldown_s) for _ in self.rungs
        ]
        self._prices: list[tuple[float, float] | None] = [None] * len(self.rungs)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runtimes: list[ModelRuntime] = []

    # The contract declares needs_training per class; a cascade needs it when one of its rungs
    # does, which only the instance knows.
    @property
    def needs_training(self) -> bool:  # type: ignore[override]
        return any(m.needs_training for m in self.rungs)

    @property
    def in_process(self) -> bool:  # type: ignore[override]
        return any(m.in_process for m in self.rungs)

    # A cascade whose thresholds are token probabilities generates; one calibrated on labels
    # classifies (also when asked to chat), as it always has.
    @property
    def can_generate(self) -> bool:  # type: ignore[override]
        return self.opts.confidence == "tokens" and any(m.can_generate for m in self.rungs)

    # -- lifecycle ----------------------------------------------------------------------------

    def check(self) -> None:
        """Every rung's own check. An endpoint that does not answer right now is only a warning
        (the cascade climbs past it); a wrong configuration is an error."""
        self.check_warnings = []
        for name, model in zip(self.names, self.rungs, strict=True):
            try:
                model.check()
            except ModelAPIError as e:
                message = f"{self.model_id}: rung {name} is not answering now: {e}"
                log.warning("%s", message)
                self.check_warnings.append(message)

    def load(self) -> None:
        for model in self.rungs:
            model.load()
        self._prices = [_api_price(m) for m in self.rungs]

    def fit(self, texts: Sequence[str], labels: Sequence[str], label_set: Sequence[str]) -> None:
        for model in self.rungs:
            if model.needs_training:
                model.fit(texts, labels, label_set)

    async def aclose(self) -> None:
        """``close()`` for callers inside the event loop: the rungs' queues are drained first."""
        for runtime in self._runtimes:
            await runtime.stop()
        self.close()

    def close(self) -> None:
        for runtime in self._runtimes:
            for worker in runtime._workers:
                if not worker.done() and not worker.get_loop().is_closed():
                    worker.cancel()
        self._runtimes, self._loop = [], None
        for model in self.rungs:
            model.close()

    def info(self) -> ModelInfo:
        return ModelInfo(
            extra={
                "rungs": [
                    {"rung": r.display, "model": r.model, "threshold": r.threshold}
                    for r in self.opts.rungs
                ]
            }
        )

    def fingerprint(self) -> str:
        return stable_hash(
            {
                "id": self.model_id,
                "options": self.options.model_dump(mode="json"),
                "rungs": [m.fingerprint() for m in self.rungs],
            }
        )

    def breaker_state(self) -> list[dict[str, Any]]:
        """Each rung's breaker, for health and metrics endpoints."""
        now = self._clock()
        return [
            {
                "rung": name,
                "open": b.is_open(now),
                "consecutive_failures": b.consecutive,
                "retry_in_s": max(0.0, b.open_until - now),
            }
            for name, b in zip(self.names, self._breakers, strict=True)
        ]

    # -- answering ----------------------------------------------------------------------------

    async def classify(self, requests: Sequence[ClassifyRequest]) -> list[Prediction]:
        return [a.prediction for a in await self.classify_traced(requests)]

    async def classify_traced(self, requests: Sequence[ClassifyRequest]) -> list[CascadeAnswer]:
        """Each request's answer with the path it took; see CascadeAnswer."""
        started = time.perf_counter()
        results = await asyncio.gather(
            *(self._route(r, started) for r in requests), return_exceptions=True
        )
        answers: list[CascadeAnswer] = []
        for result in results:
            if isinstance(result, BaseException):
                raise result
            answers.append(result)
        return answers

    def _runtime(self, k: int) -> ModelRuntime:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            # Runtimes are bound to the loop that started them (asyncio.run makes a new one
            # per call): a new loop gets new runtimes; the old loop cancelled its own workers.
            self._loop = loop
            self._runtimes = [ModelRuntime(m) for m in self.rungs]
        return self._runtimes[k]

    def _timeout(self, k: int) -> float | None:
        own = self.opts.rungs[k].timeout_s
        return own if own is not None else self.opts.timeout_s

    async def _attempt(
        self, k: int, call: Callable[[int], Awaitable[T]], failures: list[RungFailure]
    ) -> T | None:
        """Rung ``k``'s answer (``call(k)``), or None with the reason added to ``failures``: an
        open breaker skips the rung; a time-out or an error counts against its breaker."""
        name, breaker = self.names[k], self._breakers[k]
        if breaker.is_open(self._clock()):
            retry = breaker.open_until - self._clock()
            failures.append(
                RungFailure(
                    name,
                    "skipped",
                    f"circuit open after {breaker.consecutive} failures in a row; "
                    f"tried again in {retry:.1f} s",
                )
            )
            return None
        timeout = self._timeout(k)
        try:
            result = await (asyncio.wait_for(call(k), timeout) if timeout is not None else call(k))
        except TimeoutError:
            breaker.failed(self._clock())
            failures.append(RungFailure(name, "timeout", f"no answer within {timeout:g} s"))
            return None
        except Exception as e:  # any failure of a rung is what the cascade climbs past
            breaker.failed(self._clock())
            message = str(e) if isinstance(e, RungError) else f"{type(e).__name__}: {e}"
            log.warning("%s: rung %s failed, climbing: %s", self.model_id, name, message)
            failures.append(RungFailure(name, "error", message))
            return None
        breaker.succeeded()
        return result

    def _none_answered(self, failures: Sequence[RungFailure]) -> ModelAPIError:
        return ModelAPIError(
            f"{self.model_id}: no rung answered: "
            + "; ".join(f"{f.rung}: {f.message}" for f in failures)
            + "; check the rungs' endpoints and options"
        )

    async def _route(self, request: ClassifyRequest, started: float) -> CascadeAnswer:
        path = _Path()
        last = len(self.rungs) - 1
        for k, name in enumerate(self.names):
            prediction = await self._attempt(
                k, lambda j: self._runtime(j).classify(request), path.failures
            )
            if prediction is None:
                path.passed.append(name)
                continue
            path.answers[k] = prediction
            if k == last or decide(prediction.confidence, self.opts.rungs[k].threshold) == "answer":
                return self._answer(k, path, started, fallback=False)
            path.passed.append(name)
        if path.answers:
            return self._answer(max(path.answers), path, started, fallback=True)
        raise self._none_answered(path.failures)

    async def generate(self, request: GenerateRequest) -> Generation:
        return (await self.generate_traced(request)).generation

    async def generate_traced(self, request: GenerateRequest) -> CascadeGeneration:
        """The generation of the first rung sure enough of it (its mean token probability at or
        above its threshold; a rung that reports none climbs), with the path it took. Rungs
        that do not generate are passed over; failures, time-outs and open breakers climb."""
        started = time.perf_counter()
        generating = [k for k, m in enumerate(self.rungs) if m.can_generate]
        if not generating:
            raise ModelAPIError(f"{self.model_id}: none of its rungs generates text")
        passed: list[str] = []
        failures: list[RungFailure] = []
        made: dict[int, tuple[Generation, float | None]] = {}
        for k, name in enumerate(self.names):
            if k not in generating:
                failures.append(RungFailure(name, "skipped", "does not generate text"))
                passed.append(name)
                continue
            generation = await self._attempt(k, lambda j: self.rungs[j].generate(request), failures)
            if generation is None:
                passed.append(name)
                continue
            lp = generation.mean_logprob
            confidence = math.exp(lp) if lp is not None else None
            made[k] = (generation, confidence)
            if k == generating[-1] or decide(confidence, self.opts.rungs[k].threshold) == "answer":
                return self._generated(k, made, passed, failures, started, fallback=False)
            passed.append(name)
        if made:
            return self._generated(max(made), made, passed, failures, started, fallback=True)
        raise self._none_answered(failures)

    def _generated(
        self,
        k: int,
        made: dict[int, tuple[Generation, float | None]],
        passed: list[str],
        failures: list[RungFailure],
        started: float,
        *,
        fallback: bool,
    ) -> CascadeGeneration:
        costs = [self.rung_cost(j, g.tokens_in, g.tokens_out) for j, (g, _) in made.items()]
        known = [c for c in costs if c is not None]
        kept = made[k][0]
        last = len(self.rungs) - 1
        top = made.get(last, (kept, None))[0]
        return CascadeGeneration(
            generation=kept,
            answered_by=self.names[k],
            climbed_from=tuple(n for n in passed if self.names.index(n) < k),
            errors=tuple(failures),
            cost_usd=sum(known) if len(known) == len(costs) else None,
            top_rung_cost_usd=self.rung_cost(last, top.tokens_in, top.tokens_out),
            tokens_in=sum(g.tokens_in for g, _ in made.values()),
            tokens_out=sum(g.tokens_out for g, _ in made.values()),
            tried=tuple((self.names[j], c) for j, (_, c) in made.items()),
            latency_ms=(time.perf_counter() - started) * 1000,
            fallback=fallback,
        )

    def _answer(self, k: int, path: _Path, started: float, *, fallback: bool) -> CascadeAnswer:
        costs = [self._cost(j, p) for j, p in path.answers.items()]
        known = [c for c in costs if c is not None]
        return CascadeAnswer(
            prediction=path.answers[k],
            answered_by=self.names[k],
            rung_index=k,
            climbed_from=tuple(n for n in path.passed if self.names.index(n) < k),
            errors=tuple(path.failures),
            cost_usd=sum(known) if len(known) == len(costs) else None,
            top_rung_cost_usd=self._top_cost(path.answers.get(len(self.rungs) - 1), path, k),
            latency_ms=(time.perf_counter() - started) * 1000,
            fallback=fallback,
        )

    # -- money --------------------------------------------------------------------------------

    def _cost(self, k: int, prediction: Prediction) -> float | None:
        return self.rung_cost(k, prediction.tokens_in, prediction.tokens_out)

    def rung_cost(self, k: int, tokens_in: int, tokens_out: int) -> float | None:
        """What one call of rung ``k`` cost: its configured figure, else its price per token
        (after ``load``); None when unknown."""
        fixed = self.opts.rungs[k].cost_usd_per_1k
        if fixed is not None:
            return fixed / 1000
        price = self._prices[k]
        if price is None:
            return None
        return (tokens_in * price[0] + tokens_out * price[1]) / 1e6

    def rung_timeout(self, k: int) -> float | None:
        """Seconds rung ``k`` may take before a request climbs past it (None: no limit)."""
        return self._timeout(k)

    def _top_cost(self, top: Prediction | None, path: _Path, answered: int) -> float | None:
        """The top rung's cost for this request: its configured figure, its own answer's
        tokens when it answered, else its price applied to the tokens of the rung that did
        answer (an estimate: tokenizers differ a little)."""
        last = len(self.rungs) - 1
        fixed = self.opts.rungs[last].cost_usd_per_1k
        if fixed is not None:
            return fixed / 1000
        if top is not None:
            return self._cost(last, top)
        stand_in = path.answers[answered]
        if self._prices[last] is None or stand_in.tokens_in == 0:
            return None
        return self._cost(last, stand_in)


def _api_price(model: Model) -> tuple[float, float] | None:
    """USD per million input and output tokens of a rung paid per token, when known."""
    if model.billing != "tokens":
        return None
    from rung.catalog.costs import CostSpec, token_price

    price, _ = token_price(model.model_id, CostSpec())
    return (price.input_per_mtok, price.output_per_mtok) if price else None
