"""Task types (``classify``, ``extract``, ``summarize``, ...) to the code that reads, asks and
scores them.

A task type is a ``TaskKind``: it names its spec model (the ``task:`` section of a spec,
told apart by its ``type:`` field), reads its data into ``Item`` s, renders one request per
item for a rung, and scores the rungs' outputs with a pure function (outputs and items in,
per-item values and aggregate metrics with bootstrap 95% intervals out). Nothing else in rung
tests a task's name: the runner, the record and the report go through the kind.

rung's own kinds are listed in ``BUILTIN``; a plugin adds one through the ``rung.tasks``
entry-point group (``code = "my_pkg.code:CodeKind"``). A kind's module is imported only
when a spec of its type is read, so a task whose scorer needs ``seqeval`` or ``sacrebleu``
costs nothing to a run that does not use it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import import_module
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from rung.errors import SpecError, did_you_mean, validation_message
from rung.models.base import ClassifyRequest, GenerateRequest
from rung.tasks.metrics import Estimate

__all__ = [
    "BUILTIN",
    "GROUP",
    "Item",
    "TaskKind",
    "TaskScores",
    "kind_of",
    "parse_task",
    "task_types",
]

GROUP = "rung.tasks"

#: rung's own task kinds, as ``module:attribute``, imported on first use
BUILTIN: dict[str, str] = {
    "classify": "rung.tasks.classify_kind:ClassifyKind",
    "extract": "rung.tasks.extract:ExtractKind",
    "fields": "rung.tasks.fields:FieldsKind",
    "summarize": "rung.tasks.summarize:SummarizeKind",
    "translate": "rung.tasks.translate:TranslateKind",
    "generate": "rung.tasks.generate:GenerateKind",
    "chat": "rung.tasks.generate:ChatKind",
    "answer": "rung.tasks.answer_kind:AnswerKind",
}

SpecT = TypeVar("SpecT", bound=BaseModel)
RefT = TypeVar("RefT")


@dataclass(frozen=True)
class Item(Generic[RefT]):
    """One test example of a task: what the rung is shown and what a right answer is.

    ``reference`` is the task's own gold shape: a label, the IOB2 tags of the tokens, a list of
    reference summaries, a JSON object of fields."""

    id: str
    text: str
    reference: RefT
    #: task-specific inputs beside the text (the tokens of a sentence, a source language)
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskScores:
    """What a scorer returns: one mapping of metric → value per item (in the items' order),
    the aggregate metrics with bootstrap 95% intervals, and the metric that ranks rungs when
    the user names none."""

    per_item: list[dict[str, float]]
    metrics: dict[str, Estimate]
    primary: str
    #: aggregates without an interval (counts, rates of invalid answers), for the report
    extras: dict[str, float] = field(default_factory=dict)
    #: per item, what the answer was read into beyond its scores (an answer's citations)
    details: list[dict[str, Any]] | None = None
    #: per item, how sure the rung was of its answer (an answer's grounding), where known
    confidence: list[float | None] | None = None


class TaskKind(ABC, Generic[SpecT, RefT]):
    """What a task type does; one instance serves every spec of that type."""

    #: the value of ``type:`` in the spec's ``task:`` section
    task_type: ClassVar[str]
    #: the spec model of the ``task:`` section (pydantic, ``extra="forbid"``)
    Spec: ClassVar[type[BaseModel]]
    #: the metric that ranks rungs by default (``rung advise --min-quality`` without a name)
    primary: ClassVar[str]
    #: what a perfect answer scores on the metrics not reported on 0-1 (sacrebleu's BLEU and
    #: chrF: 100); recorded in results.json so that advice reads every metric as a fraction
    scales: ClassVar[Mapping[str, float]] = {}

    @abstractmethod
    def load_items(self, spec: SpecT, base_dir: Path) -> tuple[list[Item[RefT]], list[Item[RefT]]]:
        """(train, test) items read from the spec's data; paths are relative to ``base_dir``."""

    @abstractmethod
    def build_requests(
        self, spec: SpecT, train: Sequence[Item[RefT]], test: Sequence[Item[RefT]]
    ) -> list[GenerateRequest] | list[ClassifyRequest]:
        """One request per test item, with the spec's prompt (instructions, template, shots)."""

    @abstractmethod
    def score(
        self,
        spec: SpecT,
        outputs: Sequence[str | None],
        items: Sequence[Item[RefT]],
        *,
        resamples: int = 1000,
        seed: int = 0,
    ) -> TaskScores:
        """Pure: the rung's outputs (None for no answer) against the items' references.

        A kind with a judge (``judge_requests``) takes its replies as ``verdicts=``."""

    #: rungs of this task must generate text (every kind but classify)
    generative: ClassVar[bool] = True

    def template(self) -> dict[str, Any]:
        """A ``task:`` section to start from (``rung advise --task``), its file paths and
        fields placeholders named ``EDIT-ME-...``; valid under ``Spec``."""
        raise NotImplementedError(
            f"rung has no starting spec for the {self.task_type} task; write one from "
            f"`rung schema {self.task_type}`"
        )

    def judge(self, spec: SpecT) -> tuple[str, dict[str, Any]] | None:
        """The judge rung the spec names (model id, backend options), or None."""
        return None

    def judge_requests(
        self, spec: SpecT, outputs: Sequence[str | None], items: Sequence[Item[RefT]]
    ) -> list[GenerateRequest]:
        """The requests that ask the judge to grade each output (one per output); the runner
        asks them through the response cache, so grading again costs nothing."""
        raise NotImplementedError(f"the {self.task_type} task has no judge")


@cache
def _plugins() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=GROUP)}


def task_types() -> list[str]:
    return sorted({**_plugins(), **BUILTIN})


@cache
def kind_of(task_type: str) -> TaskKind[Any, Any]:
    """The kind registered for ``task_type``; its module is imported now."""
    known = {**_plugins(), **BUILTIN}
    if task_type not in known:
        raise SpecError(
            f"unknown task type {task_type!r}{did_you_mean(task_type, known)}; "
            f"known types: {', '.join(sorted(known))}"
        )
    target = known[task_type]
    module_name, _, attr = target.partition(":")
    try:
        cls = getattr(import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise SpecError(
            f"the task type {task_type!r} ({target}) cannot be imported: {e}; "
            "install the extra or package that provides it (pip install 'rung[tasks]')"
        ) from e
    if not (isinstance(cls, type) and issubclass(cls, TaskKind)) or cls.task_type != task_type:
        raise SpecError(f"{target} is not a rung TaskKind of type {task_type!r}")
    return cls()


def parse_task(data: object, source: str = "task") -> BaseModel:
    """The ``task:`` section validated by the spec model its ``type:`` names (classify when
    absent, as specs written before other tasks existed)."""
    if not isinstance(data, dict):
        raise SpecError(f"{source}: task: is a mapping with a type:, got {type(data).__name__}")
    kind = kind_of(str(data.get("type", "classify")))
    try:
        return kind.Spec.model_validate(data)
    except ValidationError as e:
        raise SpecError(f"{source}: task: {validation_message(e)}") from None
