"""How good a rung's answers were: the ``quality`` of each rung in results.json, one model per
task type.

Every task's quality model shares one core: ``metrics()``, the task's headline figures by
name, each a ``Metric`` (a value and its bootstrap 95% interval), and ``primary_metric()``, the one
that ranks rungs by default. Code that only shows or compares figures (GraphQL, the Pareto
plots) reads that core and works for any task; the task's extras (classify's per-class scores
and confusion matrix) are read by the code that draws them.

Classify's figures are stored under their own names (``quality.accuracy``, not
``quality.metrics.accuracy``), as results.json has always had them. Every other task type
(extract, summarize, translate, answer, a plugin's) has ``TextQuality``: its scorer's metrics by
name, the one that ranks, and figures without an interval. A task whose figures need a shape of
their own (classify's confusion matrix) adds its model here and to ``TaskQuality`` and
``QUALITY_MODELS``.

``RunResults`` reads its quality by the run's ``task.type`` (``quality_model``): a quality that
does not fit the task's model is refused with the field that is wrong.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "QUALITY_MODELS",
    "ClassScores",
    "ClassifyQuality",
    "Confusion",
    "Metric",
    "Quality",
    "TaskQuality",
    "TaskType",
    "TextQuality",
    "quality_model",
]


class Record(BaseModel):
    """A part of a file rung writes and reads back: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Metric(Record):
    """A figure measured on the test set, with its bootstrap 95% confidence interval."""

    value: float = Field(description="The figure on the whole test set.")
    ci95: tuple[float, float] = Field(
        description="Bootstrap 95% confidence interval, [low, high], over the test examples."
    )


class Quality(Record):
    """What every task's quality model offers: its headline metrics by name."""

    #: the task type whose rungs carry this model ("*": every type without a model of its own)
    task: ClassVar[str]

    def metrics(self) -> dict[str, Metric]:
        """The task's headline metrics, in the order reports show them."""
        raise NotImplementedError

    def primary_metric(self) -> str:
        """The metric that ranks rungs when the user names none."""
        raise NotImplementedError

    def scale(self, name: str) -> float:
        """What a perfect answer scores on ``name``: 1, or 100 for a metric reported on 0-100."""
        return 1.0


class ClassScores(Record):
    """Precision, recall and F1 of one label."""

    precision: float = Field(description="Of the examples given this label, the share right.")
    recall: float = Field(description="Of the examples whose gold is this label, the share found.")
    f1: float = Field(description="Harmonic mean of precision and recall.")
    support: int = Field(description="Test examples whose gold is this label.")


class Confusion(Record):
    """Counts of gold labels (rows) against predicted labels (columns)."""

    labels: list[str] = Field(description="The rows: gold labels, in the task's order.")
    columns: list[str] = Field(
        description="The columns: the labels, then '(invalid)' for answers that are none of them."
    )
    matrix: list[list[int]] = Field(description="matrix[gold][predicted]: example counts.")


class ClassifyQuality(Quality):
    """Quality of a classifier: accuracy and macro-F1 with intervals, invalid answers, the
    scores of each label and the confusion matrix."""

    task: ClassVar[str] = "classify"
    primary: ClassVar[str] = "accuracy"

    accuracy: Metric = Field(description="Share of test examples labelled right.")
    macro_f1: Metric = Field(
        description="Mean F1 over the labels present in the test set's gold labels."
    )
    invalid: int = Field(description="Answers that were none of the labels (counted as wrong).")
    per_class: dict[str, ClassScores] = Field(description="Scores of each label, by label.")
    confusion: Confusion = Field(description="Gold against predicted labels.")

    def metrics(self) -> dict[str, Metric]:
        return {"accuracy": self.accuracy, "macro_f1": self.macro_f1}

    def primary_metric(self) -> str:
        return self.primary


class TextQuality(Quality):
    """Quality of a rung on a task whose answers are text (extract, summarize, translate,
    generate, answer, a plugin's): the task's scorer's metrics with intervals."""

    task: ClassVar[str] = "*"

    scores: dict[str, Metric] = Field(
        description="The task's metrics by name (entity F1, ROUGE-L, chrF, ...), in the "
        "scorer's order."
    )
    primary: str = Field(description="The metric that ranks rungs by default.")
    extras: dict[str, float] = Field(
        default_factory=dict,
        description="Figures without an interval (invalid answers, mean length, ...).",
    )
    judge: str | None = Field(
        default=None, description="The model id of the LLM judge that graded, when one did."
    )
    scales: dict[str, float] = Field(
        default_factory=dict,
        description="What a perfect answer scores on the metrics not on 0-1 (sacrebleu's BLEU "
        "and chrF: 100), as the task declares them.",
    )

    def metrics(self) -> dict[str, Metric]:
        return dict(self.scores)

    def scale(self, name: str) -> float:
        return self.scales.get(name, 1.0)

    def primary_metric(self) -> str:
        return self.primary


#: the task types a run record can hold: classify, or any registered task type
TaskType = str
#: the quality of one rung: classify's own model, or a text task's metrics
TaskQuality = ClassifyQuality | TextQuality
QUALITY_MODELS: dict[str, type[Quality]] = {m.task: m for m in (ClassifyQuality, TextQuality)}


def quality_model(task_type: str) -> type[Quality]:
    """The quality model of a task type's rungs."""
    return QUALITY_MODELS.get(task_type, TextQuality)
