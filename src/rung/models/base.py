"""The backend contract: one small async class per way of running a model.

A backend declares what it can do as class flags (``can_classify``, ``can_generate``,
``needs_training``) instead of being sniffed with ``isinstance``. Heavy libraries (llama_cpp,
torch, sentence_transformers) are imported inside ``load()``, never at module import, so that
``rung models`` and spec validation stay fast and work without the extras installed.

Lifecycle, as the compare runner drives it::

    model = registry.create("llamacpp:smollm2-135m-instruct", options)
    model.check()                 # cheap: file exists, GGUF magic, API key set, endpoint up
    model.load()                  # heavy, sync, called in a worker thread
    model.fit(texts, labels)      # only when needs_training
    await model.classify([...])   # async, batch first; local backends run in a thread
    model.close()

Optional abilities, each behind its flag: ``generate`` (``can_generate``); ``stream``, which
every generating model has (by default one delta holding the whole answer) and which yields
tokens as they are made when ``can_stream``; ``embed`` (``can_embed``); ``classify_traced``
(``can_trace``: which rung of a cascade answered, and what it cost). Methods every model has,
with a default that fits most: ``aclose`` (``close`` from inside the event loop),
``breaker_state`` (None: no circuit breakers), ``endpoint`` (None: no remote endpoint),
``max_batch`` (1: no micro-batching). What a backend declares about its models (bundled names,
where card facts are read, how it is priced) is its ``profile`` (``rung.models.profile``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict

from rung.models.profile import BackendProfile, BundledModel, Pricing

__all__ = [
    "ChatMessage",
    "ClassifyRequest",
    "Embeddings",
    "GenerateRequest",
    "Generation",
    "GenerationDelta",
    "Model",
    "ModelInfo",
    "NoOptions",
    "Prediction",
    "TracedAnswer",
    "run_sync",
]

T = TypeVar("T")


@dataclass(frozen=True)
class ChatMessage:
    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True)
class ClassifyRequest:
    """One text to label. ``messages`` is the prompt the task rendered for generative rungs;
    encoder rungs read ``text`` only."""

    text: str
    labels: tuple[str, ...]
    messages: tuple[ChatMessage, ...]


@dataclass
class Prediction:
    """A rung's answer for one ClassifyRequest.

    ``label`` is None when a generative rung answered something that is not one of the labels
    (it counts as wrong). ``scores`` holds a probability per label that sums to 1 when the
    backend can tell (log-probabilities, classifier head); ``confidence`` is the score of the
    predicted label."""

    label: str | None
    scores: dict[str, float] = field(default_factory=dict)
    confidence: float | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    raw: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "scores": self.scores,
            "confidence": self.confidence,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "raw": self.raw,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Prediction:
        return cls(
            label=data["label"],
            scores=dict(data.get("scores") or {}),
            confidence=data.get("confidence"),
            tokens_in=int(data.get("tokens_in", 0)),
            tokens_out=int(data.get("tokens_out", 0)),
            raw=data.get("raw"),
        )


def softmax(logits: Any) -> Any:
    """Row-wise softmax of a (texts, labels) array in float64 (numpy), so that each row of
    scores sums to 1 within 1e-12."""
    import numpy as np

    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    exp = np.exp(z)
    return exp / exp.sum(axis=1, keepdims=True)


def predictions_from(probs: Any, tokens: Sequence[int], labels: Sequence[str]) -> list[Prediction]:
    """One Prediction per row of a classifier's probabilities (columns in ``labels`` order):
    the most probable label, its probability as the confidence, every score, the tokens read."""
    return [
        Prediction(
            label=labels[k],
            scores=dict(zip(labels, row, strict=True)),
            confidence=row[k],
            tokens_in=n,
        )
        for row, k, n in zip(probs.tolist(), probs.argmax(axis=1).tolist(), tokens, strict=True)
    ]


@dataclass(frozen=True)
class GenerateRequest:
    messages: tuple[ChatMessage, ...]
    max_tokens: int = 128
    temperature: float = 0.0
    stop: tuple[str, ...] = ()


@dataclass
class Generation:
    text: str
    tokens_in: int
    tokens_out: int
    finish_reason: str | None = None
    #: mean log-probability of the generated tokens under the model, where the backend reads
    #: it (llama.cpp): exp of it, the mean token probability, is how sure the rung was
    mean_logprob: float | None = None


@dataclass
class GenerationDelta:
    """One piece of a streamed generation. The last delta of a stream carries the
    ``finish_reason`` and the token counts of the whole generation; the others carry text and,
    when the backend knows them, the running counts so far (what a client that leaves early
    is charged for)."""

    text: str
    finish_reason: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None


@dataclass
class Embeddings:
    """Sentence embeddings: ``vectors`` is a float32 numpy array of shape (texts, dimension);
    ``tokens`` the count of tokens read per text (after truncation)."""

    vectors: Any
    tokens: list[int]


@dataclass
class ModelInfo:
    """Facts a backend can read off the loaded (or checked) model; None means unknown."""

    params: int | None = None
    file_size_bytes: int | None = None
    path: str | None = None
    quantization: str | None = None
    context_length: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TracedAnswer(Protocol):
    """One answer of ``classify_traced``: the prediction, the rung that gave it, the rungs it
    climbed past, what it cost and what the top rung alone would have cost (None: unknown),
    and the failures on the way (``rung.route.cascade.CascadeAnswer``)."""

    @property
    def prediction(self) -> Prediction: ...
    @property
    def answered_by(self) -> str: ...
    @property
    def climbed_from(self) -> Sequence[str]: ...
    @property
    def cost_usd(self) -> float | None: ...
    @property
    def top_rung_cost_usd(self) -> float | None: ...
    @property
    def errors(self) -> Sequence[object]: ...


class Model(ABC):
    """Base class of every backend. Subclasses set ``provider`` and ``Options`` and implement
    ``load`` and ``classify`` (and ``generate`` when ``can_generate``)."""

    provider: ClassVar[str]
    Options: ClassVar[type[BaseModel]] = NoOptions
    #: what the backend declares about its models: bundled names, card sources, pricing
    profile: ClassVar[BackendProfile] = BackendProfile()
    can_classify: ClassVar[bool] = True
    can_generate: ClassVar[bool] = False
    needs_training: ClassVar[bool] = False
    #: ``stream`` yields tokens as they are made (otherwise one delta after generate finishes)
    can_stream: ClassVar[bool] = False
    can_embed: ClassVar[bool] = False
    #: ``classify_traced`` reports the path of each answer (a cascade); such a model queues
    #: and batches per rung itself
    can_trace: ClassVar[bool] = False
    #: how many classify calls the runner may have in flight at once (local models: 1)
    max_concurrency: int = 1
    #: the weights run inside this process (native code that can crash it: llama.cpp, torch);
    #: False for rungs behind an API and for cascades, whose own rungs say for themselves
    in_process: ClassVar[bool] = True
    #: what to try when the rung's process dies by a signal while it loads or answers
    crash_hint: ClassVar[str] = (
        "check that the model's native library matches this machine (reinstall it), or run "
        "the rung on another machine"
    )

    def __init__(self, name: str, options: BaseModel | None = None) -> None:
        self.name = name
        self.options = options if options is not None else self.Options()

    @property
    def model_id(self) -> str:
        return f"{self.provider}:{self.name}"

    @classmethod
    def bundled(cls) -> list[BundledModel]:
        """The names this backend knows without a path, from its profile."""
        return cls.profile.listed(cls.provider)

    @property
    def endpoint(self) -> str | None:
        """The URL the model answers at, for a model behind an API; None for the others."""
        return None

    @property
    def billing(self) -> Pricing:
        """How this rung is paid for: per token, or machine time (see the profile)."""
        return self.profile.billing(self.endpoint)

    @property
    def max_batch(self) -> int:
        """Requests the serving queue may gather into one classify call (micro-batching);
        1 for models that gain nothing from batches."""
        return 1

    def check(self) -> None:
        """Cheap validation before any slow work (file exists, API key set, ...).
        Raises a RungError subclass with a message that says what to fix."""

    @abstractmethod
    def load(self) -> None:
        """Load weights or build the client. Sync and possibly slow."""

    @property
    def trained_labels(self) -> tuple[str, ...] | None:
        """The labels a model trained ahead of time answers (a folder from ``rung tune``), so
        that a server needs no label set from its config; None for rungs that take any labels
        or train on the task's. Read after ``load``."""
        return None

    def fit(self, texts: Sequence[str], labels: Sequence[str], label_set: Sequence[str]) -> None:
        """Train on the task's training split; only called when ``needs_training``."""
        raise NotImplementedError(f"{self.model_id} does not train")

    @abstractmethod
    async def classify(self, requests: Sequence[ClassifyRequest]) -> list[Prediction]:
        """Label each request; one Prediction per request, in order."""

    async def classify_traced(self, requests: Sequence[ClassifyRequest]) -> Sequence[TracedAnswer]:
        """Each request's answer with the path it took; only when ``can_trace``."""
        raise NotImplementedError(f"{self.model_id} does not trace its answers")

    async def generate(self, request: GenerateRequest) -> Generation:
        raise NotImplementedError(f"{self.model_id} does not generate text")

    async def stream(self, request: GenerateRequest) -> AsyncIterator[GenerationDelta]:
        """The generation as it is made. Backends that can stream override this and set
        ``can_stream``; this default waits for ``generate`` and yields its text at once.
        Closing the iterator early (a client went away) must stop the generation."""
        generation = await self.generate(request)
        if generation.text:
            yield GenerationDelta(generation.text)
        yield GenerationDelta(
            "",
            finish_reason=generation.finish_reason,
            tokens_in=generation.tokens_in,
            tokens_out=generation.tokens_out,
        )

    async def embed(self, texts: Sequence[str]) -> Embeddings:
        """Sentence embeddings of ``texts``; only when ``can_embed``."""
        raise NotImplementedError(f"{self.model_id} does not make embeddings")

    def info(self) -> ModelInfo:
        return ModelInfo()

    def fingerprint(self) -> str:
        """What identifies this model's answers in the response cache: the id, the options,
        and for local files their size and modification time (a new file gives new answers)."""
        return stable_hash({"id": self.model_id, "options": self.options.model_dump(mode="json")})

    def breaker_state(self) -> list[dict[str, Any]] | None:
        """The circuit breakers in front of the model's rungs, for health endpoints; None for a
        model without any."""
        return None

    def close(self) -> None:
        """Free the model's memory or connections."""

    async def aclose(self) -> None:
        """``close()`` for callers inside the event loop; a model with queues or connections
        of its own (a cascade, an API client) drains or closes them there first."""
        self.close()


def stable_hash(value: Any) -> str:
    blob = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """The sync wrapper over the async contract, for scripts and notebooks without a loop."""
    return asyncio.run(coro)
