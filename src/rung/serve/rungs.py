"""The served models: created through the registry, loaded (and trained) at startup, and called
through a ``ModelRuntime`` queue so that concurrent requests never reach a local model at once
(llama.cpp) and are micro-batched where that pays (encoders).

A model that can trace its answers (``can_trace``: ``classify_traced``, as ``cascade:`` models do) reports the
rung that answered, the rungs it climbed from and the cost it would have had on the top rung;
any other model is its own single rung. A traced model queues and batches per rung itself, so
it is called once per request, concurrently: a request that fails on every rung then fails
alone, not with the requests that happened to share its batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from rung.catalog.costs import TokenPrice
from rung.compare.probe import probe_rung, train_subset
from rung.errors import (
    ConfigurationError,
    DataError,
    ModelCrashError,
    ModelLoadError,
    RungError,
    SpecError,
)
from rung.models import registry
from rung.models.base import (
    ChatMessage,
    ClassifyRequest,
    GenerateRequest,
    Generation,
    GenerationDelta,
    Model,
    Prediction,
    TracedAnswer,
    stable_hash,
)
from rung.models.runtime import ModelRuntime
from rung.serve.config import CascadeEntry, ModelEntry, ServeConfig, TrainSpec
from rung.serve.errors import ApiError
from rung.tasks.classify import (
    ClassifyTask,
    DataSource,
    PromptSpec,
    TaskData,
    build_requests,
    load_task_data,
)
from rung.tasks.data import Example

__all__ = ["Answer", "ServedModel", "closing_stream", "load_models"]

log = logging.getLogger("rung.serve")
T = TypeVar("T")


@dataclass
class Answer:
    """One classification as the API reports it."""

    prediction: Prediction
    rung: str
    climbed_from: list[str]
    cost_usd: float | None  # None: a rung's cost is unknown
    top_rung_cost_usd: float | None
    errors: list[str]
    latency_ms: float


@dataclass
class ServedModel:
    name: str  # public name
    model: Model
    runtime: ModelRuntime | None  # None: the model queues its own calls (traced models)
    labels: tuple[str, ...] | None
    prompt: PromptSpec
    train: list[Example] = field(default_factory=list)
    price: TokenPrice | None = None
    traced: bool = False
    trained_labels: tuple[str, ...] | None = None
    in_flight: int = 0
    embed_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _heads: dict[tuple[str, ...], tuple[ChatMessage, ...]] = field(default_factory=dict)

    @property
    def model_id(self) -> str:
        return self.model.model_id

    @property
    def can_generate(self) -> bool:
        return self.model.can_generate

    @property
    def can_embed(self) -> bool:
        return self.model.can_embed

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        if self.price is None:
            return 0.0
        return (
            tokens_in * self.price.input_per_mtok + tokens_out * self.price.output_per_mtok
        ) / 1e6

    # -- classify -------------------------------------------------------------------------------

    def _labels_for(self, asked: Sequence[str] | None) -> tuple[str, ...]:
        if asked is not None:
            labels = tuple(dict.fromkeys(str(x) for x in asked))
            if len(labels) < 2:
                raise ApiError(400, "labels: list at least two distinct labels", param="labels")
            if self.trained_labels is not None and set(labels) != set(self.trained_labels):
                raise ApiError(
                    400,
                    f"{self.name} answers only the labels it was trained on "
                    f"({', '.join(self.trained_labels)}); leave out labels",
                    param="labels",
                )
            return labels
        if self.labels is None:
            raise ApiError(
                400,
                f"{self.name} has no label set: send labels in the request, or set labels: for "
                "this model in the serve config",
                param="labels",
            )
        return self.labels

    def _head(self, labels: tuple[str, ...]) -> tuple[ChatMessage, ...]:
        """The messages before the text (system prompt and few-shot turns), rendered exactly
        as `rung compare` renders them."""
        if labels not in self._heads:
            task = ClassifyTask(
                data=DataSource(path=Path("served")),
                labels=list(labels),
                prompt=self.prompt,
            )
            train = [ex for ex in self.train if ex.label in labels]
            probe = Example(id="probe", text="", label=labels[0])
            request = build_requests(task, TaskData(train=train, test=[probe], labels=labels))[0]
            self._heads[labels] = request.messages[:-1]
        return self._heads[labels]

    def requests(self, texts: Sequence[str], labels: Sequence[str] | None) -> list[ClassifyRequest]:
        label_set = self._labels_for(labels)
        head = self._head(label_set)
        template = self.prompt.template
        return [
            ClassifyRequest(
                text=text,
                labels=label_set,
                messages=(*head, ChatMessage("user", template.replace("{text}", text))),
            )
            for text in texts
        ]

    async def classify(self, texts: Sequence[str], labels: Sequence[str] | None) -> list[Answer]:
        requests = self.requests(texts, labels)
        start = time.perf_counter()
        self.in_flight += len(requests)

        async def one(request: ClassifyRequest) -> Answer:
            try:
                if self.runtime is None:
                    [trace] = await self.model.classify_traced([request])
                    return self._traced(trace, (time.perf_counter() - start) * 1000)
                prediction = await self.runtime.classify(request)
            finally:
                self.in_flight -= 1
            cost = self.cost(prediction.tokens_in, prediction.tokens_out)
            latency_ms = (time.perf_counter() - start) * 1000
            return Answer(prediction, self.model_id, [], cost, cost, [], latency_ms)

        return list(await asyncio.gather(*(one(r) for r in requests)))

    def _traced(self, trace: TracedAnswer, latency_ms: float) -> Answer:
        return Answer(
            prediction=trace.prediction,
            rung=str(trace.answered_by),
            climbed_from=[str(r) for r in trace.climbed_from],
            cost_usd=float(trace.cost_usd) if trace.cost_usd is not None else None,
            top_rung_cost_usd=(
                float(trace.top_rung_cost_usd) if trace.top_rung_cost_usd is not None else None
            ),
            errors=[str(e) for e in trace.errors],
            latency_ms=latency_ms,
        )

    # -- generate, stream and embed -------------------------------------------------------------

    async def generate(self, request: GenerateRequest) -> Generation:
        # Backends that generate serialize their own calls (llama.cpp: one lock, one thread).
        self.in_flight += 1
        try:
            return await self.model.generate(request)
        finally:
            self.in_flight -= 1

    async def stream(self, request: GenerateRequest) -> AsyncIterator[GenerationDelta]:
        """The model's stream (as it decodes when it ``can_stream``, else at once), counted in
        the queue depth until it ends or is closed."""
        self.in_flight += 1
        try:
            async with closing_stream(self.model.stream(request)) as deltas:
                async for delta in deltas:
                    yield delta
        finally:
            self.in_flight -= 1

    async def embed(self, texts: list[str]) -> tuple[np.ndarray[Any, Any], list[int]]:
        if not self.model.can_embed:
            raise ApiError(
                400,
                f"{self.name} ({self.model_id}) does not make embeddings: use an encoder model",
                code="model_cannot_embed",
                param="model",
            )
        self.in_flight += len(texts)
        try:
            # One embedding call at a time per model, beside its classify queue.
            async with self.embed_lock:
                embeddings = await self.model.embed(texts)
        finally:
            self.in_flight -= len(texts)
        return np.asarray(embeddings.vectors, dtype=np.float32), [int(t) for t in embeddings.tokens]

    def describe(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "can_classify": self.model.can_classify,
            "can_generate": self.can_generate,
            "can_embed": self.can_embed,
            "cascade": self.traced,
            "labels": list(self.labels) if self.labels else None,
            "price": self.price.model_dump() if self.price else None,
        }


@contextlib.asynccontextmanager
async def closing_stream(stream: AsyncIterator[T]) -> AsyncIterator[AsyncIterator[T]]:
    """``stream``, closed on the way out. An async generator left early is otherwise closed
    only when the garbage collector gets to it, and a model's stream holds the model (and
    goes on generating) until it is closed."""
    try:
        yield stream
    finally:
        # Any async iterator is accepted; only async generators (every model's stream) have
        # aclose, so this asks the object rather than a backend's declared ability.
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()


# ---------------------------------------------------------------------------------------------
# Loading


def _train_data(
    entry_name: str, train: TrainSpec, labels: list[str] | None, base: Path
) -> TaskData:
    source = DataSource(
        path=train.path,
        format=train.format,
        text=train.text,
        label=train.label,
        label_map=train.label_map,
    )
    task = ClassifyTask(
        data=source, labels=labels or train.labels, train_size=train.train_size, seed=train.seed
    )
    try:
        return load_task_data(task, base)
    except DataError as e:
        raise DataError(f"training data of {entry_name}: {e}") from None


def _price(entry: ModelEntry, model: Model) -> TokenPrice | None:
    if entry.price is not None:
        return entry.price
    if model.billing != "tokens":
        return None  # self-hosted: its cost is machine time, not charged per token
    from rung.catalog.cards import card_for

    try:
        card = card_for(entry.id, base_url=model.endpoint)
    except RungError:
        return None
    if card.price is None or card.on_prem:
        return None  # a catalog file says it runs on the user's own machines
    return TokenPrice(
        input_per_mtok=card.price.input_per_mtok, output_per_mtok=card.price.output_per_mtok
    )


async def _load_one(
    name: str,
    model_id: str,
    options: dict[str, Any],
    served: ModelEntry | CascadeEntry,
    config: ServeConfig,
) -> ServedModel:
    started = time.perf_counter()
    model = registry.create(model_id, options)
    if model.needs_training and served.train is None:
        raise SpecError(
            f"{name} ({model_id}) trains on labelled examples before it answers: add "
            "train: {path: ...} to its entry in the serve config"
        )
    labels = served.labels
    examples: list[Example] = []
    trained: tuple[str, ...] | None = None
    if served.train is not None:
        # read before the slow load, so a wrong path fails at once
        data = await asyncio.to_thread(_train_data, name, served.train, labels, config.base_dir)
        examples = data.train
        labels = list(data.labels)
    await asyncio.to_thread(model.check)
    await asyncio.to_thread(model.load)
    fixed = model.trained_labels
    if fixed is not None:
        if labels is not None and set(labels) != set(fixed):
            raise SpecError(
                f"{name} ({model_id}) was trained on the labels {', '.join(fixed)} but its serve "
                f"config lists {', '.join(labels)}; leave out labels: for this model"
            )
        labels, trained = list(labels or fixed), tuple(labels or fixed)
    if model.needs_training:
        assert labels is not None
        texts = [ex.text for ex in examples]
        gold = [ex.label for ex in examples]
        await asyncio.to_thread(model.fit, texts, gold, labels)
        trained = tuple(labels)
    traced = model.can_trace
    runtime = None if traced else ModelRuntime(model)
    price = _price(served, model) if isinstance(served, ModelEntry) else None
    log.info(
        "loaded %s (%s) in %.1f s%s",
        name,
        model_id,
        time.perf_counter() - started,
        f", trained on {len(examples)} examples" if trained else "",
    )
    return ServedModel(
        name=name,
        model=model,
        runtime=runtime,
        labels=tuple(labels) if labels else None,
        prompt=served.prompt,
        train=examples,
        price=price,
        traced=traced,
        trained_labels=trained,
    )


async def load_models(config: ServeConfig) -> dict[str, ServedModel]:
    """Every model and cascade of the config, loaded, trained and with its runtime started."""
    served: dict[str, ServedModel] = {}
    try:
        for entry in config.models:
            served[entry.public_name] = await _load_one(
                entry.public_name, entry.id, entry.options, entry, config
            )
        for cascade_name, cascade in config.cascades.items():
            name = f"cascade:{cascade_name}"
            served[name] = await _load_one(name, name, cascade.cascade_options(), cascade, config)
    except BaseException:
        await close_models(served)
        raise
    for model in served.values():
        if model.runtime is not None:
            model.runtime.start()
    return served


async def close_models(served: dict[str, ServedModel]) -> None:
    for model in served.values():
        if model.runtime is not None:
            await model.runtime.stop()
        try:
            # a model with queues of its own (a cascade) drains them inside the loop
            await model.model.aclose()
        except Exception as e:  # closing must not hide the reason the server stops
            log.warning("closing %s failed: %s", model.name, e)


def check_can_load(config: ServeConfig, *, probe: bool = True) -> None:
    """Checks before the server starts: every model id resolves, its options are valid, its
    files are there, and a model that trains has training data. With ``probe``, each model that
    runs in this process is then loaded and asked once in a fresh process (see
    ``rung.compare.probe``): one whose native code crashes is refused with a line naming it,
    before the server loads anything."""
    entries: list[tuple[str, str, dict[str, Any], ModelEntry | CascadeEntry]] = [
        (e.public_name, e.id, e.options, e) for e in config.models
    ]
    entries += [
        (f"cascade:{n}", f"cascade:{n}", c.cascade_options(), c) for n, c in config.cascades.items()
    ]
    for name, model_id, options, served in entries:
        model = registry.create(model_id, options)
        model.check()
        if model.needs_training and served.train is None:
            raise SpecError(
                f"{name} ({model_id}) trains on labelled examples before it answers: add "
                "train: {path: ...} to its entry in the serve config"
            )
        if served.train is not None and not config.resolve(served.train.path).is_file():
            raise ConfigurationError(
                f"training data of {name} not found: {config.resolve(served.train.path)}"
            )
    if probe:
        # A cascade's rungs are probed one by one, each model once however often it is served.
        leaves: dict[str, tuple[str, str, dict[str, Any], ModelEntry | CascadeEntry]] = {}
        for name, model_id, options, served in entries:
            parts = (
                [(str(r["model"]), dict(r.get("options") or {})) for r in served.rungs]
                if isinstance(served, CascadeEntry)
                else [(model_id, options)]
            )
            for part_id, part_options in parts:
                key = stable_hash([part_id, part_options])
                leaves.setdefault(key, (name, part_id, part_options, served))
        for name, model_id, options, served in leaves.values():
            _probe(name, model_id, options, served, config)


def _probe(
    name: str,
    model_id: str,
    options: dict[str, Any],
    served: ModelEntry | CascadeEntry,
    config: ServeConfig,
) -> None:
    """Load and ask one served model in a fresh process; a crash there refuses the config."""
    model = registry.create(model_id, options)
    if not model.in_process:
        return
    labels = tuple(served.labels or ())
    train = None
    if served.train is not None:
        data = _train_data(name, served.train, served.labels, config.base_dir)
        labels = data.labels
        if model.needs_training:
            texts, gold = [ex.text for ex in data.train], [ex.label for ex in data.train]
            train = train_subset(texts, gold, data.labels)
    # A generative rung is asked for a few tokens (the decode loop is where native code
    # crashes); any other answers one text.
    requests = [] if model.can_generate else [ClassifyRequest("rung probe", labels, ())]
    log.info("loading %s (%s) in a fresh process first", name, model_id)
    try:
        probe_rung(model_id, options, requests, train, generate=model.can_generate)
    except ModelCrashError as e:
        raise ModelLoadError(
            f"{name} cannot be served: {e}; fix it or remove it from the serve config "
            "(rung serve --no-probe skips this check)"
        ) from None
