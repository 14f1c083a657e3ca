"""The run record of a task other than ``classify`` (extract, summarize, translate, generate,
and plugins' tasks): results.json with each rung's quality as a mapping of metric → value and
95% interval, as the task's scorer made it, beside the latency and tokens every task has.

Classify keeps its own record (``rung.runs.record``, with confusion matrices and calibration);
both share ``Metric``, ``Latency`` and ``Tokens``, and predictions.jsonl's ``PredictionRow``
(with ``generated`` and ``item_metrics`` set for these tasks).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import Field, field_validator

from rung.runs.quality import Metric, Record
from rung.runs.record import RECORD_VERSION, Latency, Tokens

__all__ = ["TaskRunResults", "TaskRungResult"]


class TaskRungResult(Record):
    """One rung's figures on a generative task."""

    model: str = Field(description="The model id, provider:name.")
    label: str = Field(description="The rung's name in the run.")
    n: int = Field(description="Test items answered.")
    quality: dict[str, Metric] = Field(description="The task's metrics, by name, with intervals.")
    primary: str = Field(description="The metric that ranks rungs by default.")
    extras: dict[str, float] = Field(
        default_factory=dict, description="Figures without an interval (invalid answers, length)."
    )
    latency_ms: Latency = Field(description="Latency one request at a time.")
    tokens: Tokens
    throughput_per_s: float = Field(description="Requests per second while answering.")
    output_tokens_per_s: float = Field(description="Output tokens per second while answering.")
    cached: int = Field(description="Answers taken from the response cache.")
    judge: str | None = Field(default=None, description="The judge's model id, when one graded.")


class TaskRunResults(Record):
    """results.json of a generative task's run."""

    record_version: int = Field(default=RECORD_VERSION, description="Shape of this file.")
    rung_version: str = Field(description="The rung version that wrote the file.")
    name: str | None = Field(description="The spec's name of the comparison.")
    created: str = Field(description="When the run finished, UTC, ISO 8601.")
    task_type: str = Field(description="The task type (extract, summarize, ...).")
    n_train: int = Field(description="Training items (shots are drawn from them).")
    n_test: int = Field(description="Test items every rung answered.")
    seed: int = Field(description="Seed of the sampling and the bootstrap.")
    rungs: list[TaskRungResult] = Field(description="The rungs measured, in the spec's order.")

    @field_validator("record_version")
    @classmethod
    def _known_version(cls, version: int) -> int:
        if version != RECORD_VERSION:
            raise ValueError(
                f"record version {version} is not one this rung reads ({RECORD_VERSION})"
            )
        return version

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)

    def to_text(self) -> str:
        return json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n"
