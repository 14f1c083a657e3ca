"""The run record: what a compare run measured, as results.json and predictions.jsonl hold it.

``RunResults`` is results.json: the task, one ``RungResult`` per rung measured (quality,
latency, tokens, load test, memory, cost, the model's facts), what the same workload costs on
models that were not run (``counterfactual``) and the rungs that could not be measured
(``failed``). ``PredictionRow`` is one line of predictions.jsonl: one rung's answer to one test
example. The field order of each model is the key order of the file, so a record read and
written again is the same text.

``record_version`` says which shape a file has; files written before it existed have the
shape of version 1. The JSON schemas are published in schemas/ (``rung schema results``,
``rung schema prediction``).
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from rung.runs.quality import (
    ClassifyQuality,
    Metric,
    Record,
    TaskQuality,
    TaskType,
    quality_model,
)

__all__ = [
    "RECORD_VERSION",
    "BaselineRow",
    "CounterfactualRow",
    "FailedRung",
    "Latency",
    "LoadLevel",
    "MemoryMb",
    "Metric",
    "PredictionRow",
    "RunResults",
    "RungCalibration",
    "RungCost",
    "RungResult",
    "TaskSummary",
    "TimeToFirstToken",
    "Tokens",
    "classify_quality",
]

RECORD_VERSION = 1


class Latency(Record):
    """Milliseconds per request."""

    p50: float = Field(description="Median.")
    p95: float = Field(description="95th percentile.")
    p99: float = Field(description="99th percentile.")
    mean: float = Field(description="Mean.")


class Tokens(Record):
    """Tokens the rung read and wrote over the test set (0 for encoders' output)."""

    # "in" is a Python keyword: the field is in_ in code and "in" in the file.
    in_: int = Field(
        validation_alias="in",
        serialization_alias="in",
        description="Input (prompt) tokens, all requests together.",
    )
    out: int = Field(description="Output tokens, all requests together.")
    in_per_request: float = Field(description="Input tokens per request.")
    out_per_request: float = Field(description="Output tokens per request.")


class TimeToFirstToken(Record):
    """Time to first token of a generative rung at one load level, in ms."""

    p50: float = Field(description="Median.")
    p95: float = Field(description="95th percentile.")
    n: float = Field(description="Requests timed.")


class LoadLevel(Record):
    """One level of the load test: closed-loop virtual users sending requests back to back."""

    concurrency: int = Field(description="Concurrent virtual users.")
    requests: int = Field(description="Requests answered.")
    errors: int = Field(description="Requests that failed.")
    wall_s: float = Field(description="Seconds the level ran.")
    throughput_per_s: float = Field(description="Requests answered per second.")
    output_tokens_per_s: float = Field(description="Output tokens per second.")
    latency_ms: Latency = Field(description="Latency of the answered requests.")
    first_error: str | None = Field(default=None, description="The first failure, as text.")
    unfinished: int = Field(
        default=0, description="Requests cut off in flight when the level's time ran out."
    )
    ttft_ms: TimeToFirstToken | None = Field(
        default=None, description="Time to first token (generative rungs); null otherwise."
    )


class MemoryMb(Record):
    """Memory in MiB: measured in a fresh process (null when not measured) beside an estimate
    from the model's own metadata."""

    peak_rss: float | None = Field(description="Peak resident set of the process.")
    baseline_rss: float | None = Field(description="Resident set before the model loaded.")
    model_rss: float | None = Field(description="peak_rss - baseline_rss: the model's share.")
    peak_gpu: float | None = Field(description="Peak GPU memory, where a GPU was used.")
    estimate: float | None = Field(
        description="Weights + KV cache at measure.context tokens, from the model's metadata."
    )
    estimate_basis: str = Field(description="What the estimate counts, or why there is none.")
    file: float | None = Field(description="Size of the model's file(s).")


class RungCost(Record):
    """Cost of 1,000 requests like the test set's."""

    usd_per_1k: float | None = Field(description="USD per 1,000 requests; null when unknown.")
    basis: Literal["api", "machine"] = Field(
        description="api: tokens × the price per token; machine: hourly price ÷ throughput."
    )
    detail: str = Field(description="How the figure was made, for people.")


class RungCalibration(Record):
    """The words a generative rung was asked with and how its label scores were corrected,
    chosen on training examples (never the test split)."""

    method: Literal["none", "contextual", "fitted"] = Field(
        description="fitted: logistic regression on the labels' log-probabilities; contextual: "
        "divided by the scores on content-free texts; none: raw scores."
    )
    reason: str | None = Field(default=None, description="Why the rung was not calibrated.")
    verbalizer: dict[str, str] = Field(
        default_factory=dict, description="The word the rung was asked for each label."
    )
    shots: int | None = Field(default=None, description="Shots per label the rung was asked with.")
    examples: int = Field(default=0, description="Training examples asked to choose.")
    candidates: dict[str, float] = Field(
        default_factory=dict,
        description="Each way of asking tried (shots per label, the words /-joined) and its "
        "cross-validated accuracy on the training examples.",
    )
    weights: list[list[float]] = Field(
        default_factory=list,
        description="Calibrated log-odds = log-probabilities @ weights.T + bias.",
    )
    bias: list[float] = Field(default_factory=list, description="See weights.")
    content_free: dict[str, float] | None = Field(
        default=None, description="Mean label probabilities on the content-free texts."
    )
    chosen_on: str | None = Field(default=None, description="What the choice was made on.")


class RungResult(Record):
    """One rung's measured figures."""

    model: str = Field(description="The model id, provider:name.")
    label: str = Field(description="The rung's name in the run (the spec's label, or the id).")
    n: int = Field(description="Test examples answered.")
    quality: TaskQuality = Field(description="How good the answers were; its shape is the task's.")
    latency_ms: Latency = Field(description="Latency one request at a time (or at concurrency).")
    tokens: Tokens
    wall_s: float = Field(description="Seconds the test set took at the measured throughput.")
    throughput_per_s: float = Field(description="Requests per second while answering the test set.")
    concurrency: int = Field(description="Calls in flight while answering the test set.")
    load: list[LoadLevel] | None = Field(description="The load test's levels; null when skipped.")
    memory_mb: MemoryMb
    cost_usd_per_1k: float | None = Field(description="cost.usd_per_1k, for quick reading.")
    cost: RungCost
    load_s: float | None = Field(description="Seconds to load the model; null when cached.")
    fit_s: float | None = Field(
        description="Seconds to train on the training split; null for rungs that do not train."
    )
    params: int | None = Field(description="Parameters, from the model's own files.")
    file_size_bytes: int | None = Field(description="Size of the model's file(s) in bytes.")
    quantization: str | None = Field(description="Quantization of the weights, e.g. Q4_K_M.")
    context_length: int | None = Field(description="Longest input the model takes, in tokens.")
    path: str | None = Field(description="Where the model's files are.")
    cached: int = Field(description="Answers taken from the response cache.")
    quality_raw: TaskQuality | None = Field(
        default=None,
        description="The same figures before calibration; null when the rung was not calibrated.",
    )
    calibration: RungCalibration | None = Field(
        default=None, description="How a generative rung's answers were chosen and corrected."
    )

    def best_throughput(self) -> float:
        """The highest throughput measured: at a load-test level without errors, or one request
        at a time."""
        levels = [lv.throughput_per_s for lv in self.load or [] if not lv.errors]
        return max([self.throughput_per_s, *levels])


def classify_quality(r: RungResult) -> ClassifyQuality:
    """The classify figures of a rung of a classify run (its confusion matrix, per-class
    scores); refused for a rung of another task, whose quality has the task's own metrics."""
    if not isinstance(r.quality, ClassifyQuality):
        raise TypeError(f"{r.label} was measured on a text task; it has no classify figures")
    return r.quality


class TaskSummary(Record):
    """The task the rungs were measured on."""

    type: TaskType = Field(description="The task type; it decides the shape of each quality.")
    labels: list[str] = Field(
        default_factory=list,
        description="The label set, in the order reports show it (classify; empty otherwise).",
    )
    n_train: int = Field(description="Training examples (for rungs that train).")
    n_test: int = Field(description="Test examples every rung answered.")
    seed: int = Field(description="Seed of the splits and the bootstrap.")
    data: str = Field(description="The data file (or folder), as an absolute path.")
    items_sha256: str | None = Field(
        default=None,
        description="SHA-256 of the test items (ids, texts, gold answers), so that `rung check` "
        "can tell whether two runs answered the same items; null in runs written before it.",
    )


class CounterfactualRow(Record):
    """What the workload costs per 1,000 requests on one model: a rung of the run, or an API
    model priced without being run (cost.compare_with)."""

    model: str = Field(description="The model id.")
    label: str = Field(description="The rung's label, or the model id for models not run.")
    usd_per_1k: float | None = Field(description="USD per 1,000 requests; null when unknown.")
    basis: str = Field(description="How the figure was made, for people.")
    in_ladder: bool = Field(description="Whether the model is a rung of this run.")


class FailedRung(Record):
    """A rung that could not be measured: its process died."""

    label: str = Field(description="The rung's label.")
    model: str = Field(description="The model id.")
    error: str = Field(description="What happened and what to try, in one line.")
    signal: str | None = Field(description="The signal that killed the process, e.g. SIGSEGV.")
    stage: str | None = Field(description="What the rung was doing: loading, answering, ...")


class BaselineRow(Record):
    """What guessing scores on the test set, printed beside the rungs."""

    name: str = Field(description="majority class, or random.")
    rule: str = Field(description="How it answers.")
    accuracy: Metric
    macro_f1: Metric


class RunResults(Record):
    """results.json: everything a compare run measured."""

    record_version: int = Field(
        default=RECORD_VERSION, description="Shape of this file; 1 when absent."
    )
    rung_version: str = Field(description="The rung version that wrote the file.")
    name: str | None = Field(description="The spec's name of the comparison.")
    created: str = Field(description="When the run finished, UTC, ISO 8601.")
    task: TaskSummary
    rungs: list[RungResult] = Field(description="The rungs measured, in the spec's order.")
    counterfactual: list[CounterfactualRow] = Field(
        default_factory=list, description="The cost of the workload on each model priced."
    )
    baselines: list[BaselineRow] = Field(
        default_factory=list,
        description="Guessing on the test set (always the majority class, uniformly random).",
    )
    failed: list[FailedRung] = Field(
        default_factory=list,
        description="Rungs that could not be measured; the key is written only when some did.",
    )

    @field_validator("record_version")
    @classmethod
    def _known_version(cls, version: int) -> int:
        if version != RECORD_VERSION:
            raise ValueError(
                f"record version {version} is not one this rung reads ({RECORD_VERSION}); "
                "read it with the rung version that wrote it, or run the comparison again"
            )
        return version

    @model_validator(mode="after")
    def _quality_of_the_task(self) -> RunResults:
        expected = quality_model(self.task.type)
        for i, r in enumerate(self.rungs):
            if not isinstance(r.quality, expected):
                raise ValueError(
                    f"rungs[{i}].quality is not the quality of a {self.task.type} task"
                )
        return self

    def beats_guessing(self, rung: RungResult) -> bool:
        """Whether the rung is clearly better than guessing: the lower end of its accuracy's
        interval above the accuracy of every baseline (always the majority class, random).
        A record without baselines (written before they were, or of a task that has none)
        counts every rung as better."""
        if not isinstance(rung.quality, ClassifyQuality):
            return True
        low = rung.quality.accuracy.ci95[0]
        return all(low > b.accuracy.value for b in self.baselines)

    def to_json(self) -> dict[str, Any]:
        """The record as results.json holds it."""
        return self.model_dump(
            mode="json", by_alias=True, exclude=None if self.failed else {"failed"}
        )

    def to_text(self) -> str:
        """results.json's text."""
        return json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n"


class PredictionRow(Record):
    """One line of predictions.jsonl: one rung's answer to one test example."""

    rung: str = Field(description="The rung's label.")
    model: str = Field(description="The model id.")
    id: str = Field(description="The example's id.")
    text: str = Field(description="The example's text.")
    gold: str = Field(description="The gold answer.")
    predicted: str | None = Field(description="The rung's answer; null when it was invalid.")
    confidence: float | None = Field(
        description="The score of the answer, where the rung gives one."
    )
    scores: dict[str, float] = Field(
        description="A probability per label, where the rung gives them."
    )
    latency_ms: float = Field(description="How long the answer took.")
    tokens_in: int = Field(description="Input tokens.")
    tokens_out: int = Field(description="Output tokens.")
    raw: str | None = Field(description="The rung's raw output, where it generates text.")
    generated: str | None = Field(
        default=None,
        description="The text a generative task's rung wrote (extract, summarize, ...).",
    )
    item_metrics: dict[str, float] | None = Field(
        default=None,
        description="This example's scores under the task's metrics (a generative task's).",
    )
    cached: bool = Field(description="Whether the answer came from the response cache.")
    details: dict[str, Any] | None = Field(
        default=None,
        description="What the answer was read into beyond its scores: for an answer task, the "
        "passages it cited and was given, and how grounded it is.",
    )
    predicted_raw: str | None = Field(
        default=None, description="The answer before calibration, where the rung was calibrated."
    )
    scores_raw: dict[str, float] | None = Field(
        default=None, description="The label probabilities before calibration, where calibrated."
    )

    def to_line(self) -> str:
        """The row as a line of predictions.jsonl (without the newline)."""
        return json.dumps(self.model_dump(mode="json"), ensure_ascii=False)
