"""The compare spec: models × task × data × measurements, as a YAML file.

Loaded with ``yaml.safe_load`` (data only, never code) and validated by pydantic models that
forbid unknown fields; ``rung schema`` prints the JSON schema, published in schemas/. A run
folder keeps the spec it ran (``spec_as_run``: defaults filled in, data paths absolute), so
``compare`` writes it and ``advise``, ``route`` and ``serve`` read it back as this model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from rung.catalog.costs import CostSpec
from rung.errors import SpecError, validation_message
from rung.tasks.classify import ClassifyTask

__all__ = [
    "CheckSpec",
    "CompareSpec",
    "LoadSpec",
    "MeasureSpec",
    "ModelRef",
    "base_urls",
    "distinct_labels",
    "ids_or_refs",
    "load_spec",
    "parse_spec",
    "read_spec_data",
    "spec_as_run",
]


class ModelRef(BaseModel):
    """A rung of the ladder: a model id and its backend options."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(
        description="provider:name, e.g. llamacpp:smollm2-135m-instruct or openai:gpt-4o-mini."
    )
    label: str | None = Field(default=None, description="Name shown in reports (default: the id).")
    options: dict[str, Any] = Field(
        default_factory=dict, description="Backend options (see `rung models`)."
    )

    @property
    def display(self) -> str:
        return self.label or self.id


def ids_or_refs(schema: dict[str, Any]) -> None:
    """The JSON schema of a ``models:`` list says what the specs accept: a rung is a bare id
    or an {id, label, options} object (the validators turn ids into objects)."""
    schema["items"] = {
        "anyOf": [
            {"type": "string", "description": "A model id (provider:name)."},
            schema.get("items", {}),
        ]
    }


def distinct_labels(models: list[ModelRef]) -> list[ModelRef]:
    """``models``, refused when two rungs would carry the same name in a run."""
    names = [m.display for m in models]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"rungs listed twice: {', '.join(dupes)}; give each a distinct label")
    return models


def base_urls(models: list[ModelRef]) -> dict[str, str]:
    """The base URL each rung is asked at, by its label, where its options give one (a
    server on the user's own network keeps the data on premises)."""
    return {m.display: url for m in models if isinstance(url := m.options.get("base_url"), str)}


class LoadSpec(BaseModel):
    """Closed-loop load test: at each level, that many virtual users send requests back to back."""

    model_config = ConfigDict(extra="forbid")

    concurrency: list[int] = Field(
        default_factory=lambda: [1, 4, 16], description="Concurrent users per level."
    )
    requests: int = Field(default=48, ge=1, description="Requests per level (at most).")
    max_seconds: float = Field(default=20.0, gt=0, description="Time per level (at most).")

    @field_validator("concurrency")
    @classmethod
    def _positive(cls, levels: list[int]) -> list[int]:
        if not levels or any(c < 1 for c in levels):
            raise ValueError("list one or more concurrency levels, each at least 1")
        return sorted(set(levels))


class MeasureSpec(BaseModel):
    """What is measured besides quality, and how figures are computed."""

    model_config = ConfigDict(extra="forbid")

    bootstrap: int = Field(
        default=1000, ge=100, le=100_000, description="Bootstrap resamples for the 95% intervals."
    )
    load: LoadSpec | None = Field(
        default_factory=LoadSpec, description="Load test per rung; null to skip it."
    )
    memory: bool = Field(
        default=True, description="Measure each local rung's peak memory in a fresh process."
    )
    context: int = Field(
        default=2048,
        ge=1,
        description="Context length (tokens) for the memory estimate from model metadata.",
    )


class CheckSpec(BaseModel):
    """How `rung check` gates a run against a baseline run: a rung fails when a metric fell by
    more than its margin with statistical support (a one-sided paired test per item, Holm-
    corrected across every rung × metric tested), or when it broke a latency or cost budget."""

    model_config = ConfigDict(extra="forbid")

    alpha: float = Field(
        default=0.05, gt=0, lt=1, description="Family-wise error rate of the quality tests."
    )
    margins: dict[str, float] = Field(
        default_factory=lambda: {"accuracy": 0.02},
        description="Largest drop tolerated per metric, in the metric's units (0.02 = 2 points "
        "of accuracy); metrics not listed get default_margin.",
    )
    default_margin: float = Field(
        default=0.02, ge=0, description="Margin of a metric that margins does not list."
    )
    require_non_inferiority: bool = Field(
        default=False,
        description="Also fail when the data cannot show the drop is within the margin (the "
        "interval's lower end below -margin), not only when a larger drop is shown.",
    )
    bootstrap: int = Field(
        default=2000, ge=100, le=100_000, description="Paired bootstrap resamples."
    )
    rungs: list[str] | None = Field(
        default=None, description="Rungs to gate, by label (default: every rung in both runs)."
    )
    latency_p95_ms: float | None = Field(
        default=None, gt=0, description="Budget: latency p95 of each rung at most this, in ms."
    )
    latency_p95_ratio: float | None = Field(
        default=None,
        gt=0,
        description="Budget: latency p95 at most this multiple of the baseline's (1.2 = 20% slower).",
    )
    cost_per_1k_usd: float | None = Field(
        default=None, ge=0, description="Budget: cost per 1,000 requests at most this, in USD."
    )
    cost_ratio: float | None = Field(
        default=None,
        gt=0,
        description="Budget: cost per 1,000 requests at most this multiple of the baseline's.",
    )

    def margin(self, metric: str) -> float:
        return self.margins.get(metric, self.default_margin)


class CompareSpec(BaseModel):
    """A comparison of rungs on one task."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(
        default=None, description="Name of the comparison, shown in the report."
    )
    task: ClassifyTask
    models: list[ModelRef] = Field(
        min_length=1,
        description="The rungs, as ids or {id, label, options}.",
        json_schema_extra=ids_or_refs,
    )
    measure: MeasureSpec = Field(default_factory=MeasureSpec)
    cost: CostSpec = Field(default_factory=CostSpec)
    check: CheckSpec = Field(
        default_factory=CheckSpec, description="How `rung check` gates a run against a baseline."
    )

    @field_validator("models", mode="before")
    @classmethod
    def _ids_as_refs(cls, value: object) -> object:
        if isinstance(value, list):
            return [{"id": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("models")
    @classmethod
    def _unique_names(cls, models: list[ModelRef]) -> list[ModelRef]:
        return distinct_labels(models)

    def base_urls(self) -> dict[str, str]:
        return base_urls(self.models)


def _absolute(path: Path, base_dir: Path) -> Path:
    return path if path.is_absolute() else (base_dir / path).resolve()


def spec_as_run(spec: CompareSpec, base_dir: Path) -> CompareSpec:
    """``spec`` as a run folder keeps it: its data paths (relative to ``base_dir``, the spec
    file's folder) made absolute, so that the run can be read again from anywhere."""
    task = spec.task
    data = task.data.model_copy(update={"path": _absolute(task.data.path, base_dir)})
    test_data = (
        None
        if task.test_data is None
        else task.test_data.model_copy(update={"path": _absolute(task.test_data.path, base_dir)})
    )
    return spec.model_copy(
        update={"task": task.model_copy(update={"data": data, "test_data": test_data})}
    )


def parse_spec(data: object, source: str = "spec") -> CompareSpec:
    if not isinstance(data, dict):
        raise SpecError(
            f"{source}: a spec is a YAML mapping with task: and models:, got {type(data).__name__}"
        )
    try:
        return CompareSpec.model_validate(data)
    except ValidationError as e:
        raise SpecError(f"{source}: {validation_message(e)}") from None


def read_spec_data(path: Path) -> object:
    """The YAML data of a spec file (of any task type), or one line saying why it cannot be
    read."""
    if not path.is_file():
        raise SpecError(f"spec file not found: {path}")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise SpecError(f"{path}: malformed YAML{where}: {problem}") from None
    except UnicodeDecodeError:
        raise SpecError(f"{path}: not a UTF-8 text file") from None


def load_spec(path: Path) -> CompareSpec:
    return parse_spec(read_spec_data(path), str(path))
