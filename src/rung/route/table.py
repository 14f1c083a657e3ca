"""A compare run read back as a table: every rung's answer to the same examples.

``route calibrate`` and ``route simulate`` work on this table only, so they can be tested on
hand-built tables as well as on real runs. ``load_run`` reads a run folder (``results.json``,
``predictions.jsonl`` and, when present, ``spec.yaml`` for each rung's backend options)
through ``rung.runs.RunFolder``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from rung.errors import DataError, SpecError, did_you_mean
from rung.runs import PredictionRow, RunFolder, RunResults

__all__ = ["CostBasis", "RunTable", "RungColumn", "load_run", "rung_costs"]

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
CostBasis = Literal["usd", "latency_ms"]


@dataclass(frozen=True)
class RungColumn:
    """One rung's answers, aligned with the table's examples. A confidence the rung could not
    tell is NaN. ``quality`` is each answer's score on a text task's primary metric (0-1, such
    as an answer's token F1); without it an answer is right when it is the gold label."""

    label: str
    model: str
    predicted: tuple[str | None, ...]
    confidence: FloatArray
    options: dict[str, Any] = field(default_factory=dict)
    cost_usd_per_1k: float | None = None
    latency_ms: float | None = None
    quality: FloatArray | None = None

    def correct(self, gold: Sequence[str]) -> FloatArray:
        """Each answer's quality: 1 or 0 for a label, its metric's value for a text answer."""
        if self.quality is not None:
            return self.quality
        return np.array(
            [p is not None and p == g for p, g in zip(self.predicted, gold, strict=True)],
            dtype=np.float64,
        )


@dataclass(frozen=True)
class RunTable:
    """Gold labels and every rung's answers to the same examples, rungs in the run's order."""

    ids: tuple[str, ...]
    gold: tuple[str, ...]
    labels: tuple[str, ...]
    rungs: tuple[RungColumn, ...]
    source: str = "the run"
    #: what "right" means: accuracy for labels, a text task's primary metric otherwise
    metric: str = "accuracy"
    #: the run's task type
    task: str = "classify"

    @property
    def n(self) -> int:
        return len(self.ids)

    def names(self) -> list[str]:
        return [r.label for r in self.rungs]

    def rung(self, name: str) -> RungColumn:
        """A rung by its label in the run, or by its model id when that is unambiguous."""
        for r in self.rungs:
            if r.label == name:
                return r
        by_model = [r for r in self.rungs if r.model == name]
        if len(by_model) == 1:
            return by_model[0]
        if len(by_model) > 1:
            raise SpecError(
                f"{self.source} has several rungs of model {name!r} "
                f"({', '.join(r.label for r in by_model)}); name one by its label"
            )
        raise SpecError(
            f"{self.source} has no rung {name!r}{did_you_mean(name, self.names())}; "
            f"its rungs are: {', '.join(self.names())}"
        )

    def accuracy(self, name: str) -> float:
        return float(self.rung(name).correct(self.gold).mean()) if self.n else 0.0

    def subset(self, rows: Sequence[int]) -> RunTable:
        """The same rungs on some of the examples (for a held-out check)."""
        at = np.asarray(rows, dtype=np.int64)
        return replace(
            self,
            ids=tuple(self.ids[i] for i in at),
            gold=tuple(self.gold[i] for i in at),
            rungs=tuple(
                replace(
                    r,
                    predicted=tuple(r.predicted[i] for i in at),
                    confidence=r.confidence[at],
                    quality=None if r.quality is None else r.quality[at],
                )
                for r in self.rungs
            ),
        )

    @classmethod
    def build(
        cls,
        gold: Sequence[str],
        rungs: Mapping[str, tuple[Sequence[str | None], Sequence[float | None]]],
        *,
        costs_usd_per_1k: Mapping[str, float | None] | None = None,
        latencies_ms: Mapping[str, float | None] | None = None,
        labels: Sequence[str] | None = None,
    ) -> RunTable:
        """A table from plain lists: rung label → (predicted labels, confidences)."""
        costs = costs_usd_per_1k or {}
        latencies = latencies_ms or {}
        columns = tuple(
            RungColumn(
                label=name,
                model=name,
                predicted=tuple(pred),
                confidence=_confidences(conf),
                cost_usd_per_1k=costs.get(name),
                latency_ms=latencies.get(name),
            )
            for name, (pred, conf) in rungs.items()
        )
        for c in columns:
            if len(c.predicted) != len(gold) or len(c.confidence) != len(gold):
                raise DataError(f"rung {c.label}: {len(c.predicted)} answers for {len(gold)} golds")
        return cls(
            ids=tuple(str(i) for i in range(len(gold))),
            gold=tuple(gold),
            labels=tuple(labels or sorted(set(gold))),
            rungs=columns,
            source="the table",
        )


def _confidences(values: Sequence[float | None]) -> FloatArray:
    return np.array(
        [math.nan if v is None else float(v) for v in values], dtype=np.float64
    ).reshape(-1)


def rung_costs(rungs: Sequence[RungColumn]) -> tuple[FloatArray, CostBasis, str | None]:
    """Cost of one request on each rung: USD from the run's cost per 1,000 requests when every
    rung has one, else the mean latency in ms as a relative cost (with a note saying so)."""
    usd = [r.cost_usd_per_1k for r in rungs]
    if all(c is not None for c in usd):
        return np.array([float(c) / 1000 for c in usd if c is not None]), "usd", None
    missing = [r.label for r, c in zip(rungs, usd, strict=True) if c is None]
    latency = [r.latency_ms for r in rungs]
    if any(lat is None for lat in latency):
        unknown = [r.label for r, lat in zip(rungs, latency, strict=True) if lat is None]
        raise DataError(
            f"no cost and no latency known for {', '.join(unknown)}: the cascade's cost cannot "
            "be weighed; run the comparison again so that results.json has cost_usd_per_1k"
        )
    note = (
        f"no cost per request is known for {', '.join(missing)}: costs are relative, the mean "
        "latency of each rung in ms (a stand-in for machine time)"
    )
    return np.array([float(lat) for lat in latency if lat is not None]), "latency_ms", note


# -- reading a run folder -------------------------------------------------------------------------


def load_run(run_dir: Path) -> RunTable:
    """Read a compare run folder; raises DataError naming what is missing or inconsistent."""
    folder = RunFolder(run_dir)
    predictions = folder.predictions()
    results = folder.results()
    summaries = {r.label: r for r in results.rungs}
    options = folder.rung_options()
    rows: dict[str, dict[str, PredictionRow]] = {}
    models: dict[str, str] = {}
    for row in predictions:
        answers = rows.setdefault(row.rung, {})
        if row.id in answers:
            raise DataError(
                f"{folder.predictions_path}: rung {row.rung} answered example {row.id!r} twice"
            )
        answers[row.id] = row
        models.setdefault(row.rung, row.model)
    if not rows:
        raise DataError(f"{folder.predictions_path} is empty: the run has no predictions to route")
    names = [n for n in summaries if n in rows] + [n for n in rows if n not in summaries]
    first = names[0]
    ids = list(rows[first])
    for name in names[1:]:
        if set(rows[name]) != set(ids):
            only_a = sorted(set(ids) - set(rows[name]))
            only_b = sorted(set(rows[name]) - set(ids))
            raise DataError(
                f"rungs {first} and {name} were run on different examples "
                f"({len(only_a)} only in {first}, {len(only_b)} only in {name}, e.g. "
                f"{(only_a or only_b)[:3]}); routing needs every rung's answer to the same "
                "examples: compare them in one run"
            )
    gold = [rows[first][i].gold for i in ids]
    for name in names[1:]:
        for i, g in zip(ids, gold, strict=True):
            if rows[name][i].gold != g:
                raise DataError(
                    f"example {i!r} has gold {g!r} for {first} and "
                    f"{rows[name][i].gold!r} for {name}: the predictions come from "
                    "different data; compare the rungs in one run"
                )
    metric = "accuracy" if results.task.type == "classify" else _primary(results, folder)
    columns = []
    for name in names:
        summary = summaries.get(name)
        quality = None
        if metric != "accuracy":
            quality = _quality([rows[name][i] for i in ids], metric, name, folder)
        columns.append(
            RungColumn(
                label=name,
                model=summary.model if summary is not None else models[name],
                predicted=tuple(rows[name][i].predicted for i in ids),
                confidence=_confidences([rows[name][i].confidence for i in ids]),
                options=options.get(name, {}),
                cost_usd_per_1k=summary.cost_usd_per_1k if summary is not None else None,
                latency_ms=summary.latency_ms.mean if summary is not None else None,
                quality=quality,
            )
        )
    labels = results.task.labels or sorted(set(gold))
    return RunTable(
        ids=tuple(ids),
        gold=tuple(gold),
        labels=tuple(labels),
        rungs=tuple(columns),
        source=str(run_dir),
        metric=metric,
        task=results.task.type,
    )


def _primary(results: RunResults, folder: RunFolder) -> str:
    """The metric a text task's cascade keeps: the run's primary one, which every rung shares."""
    primaries = {r.quality.primary_metric() for r in results.rungs}
    if len(primaries) != 1:
        raise DataError(
            f"{folder.results_path}: the rungs rank by different metrics "
            f"({', '.join(sorted(primaries))}); a cascade needs one"
        )
    return primaries.pop()


def _quality(
    rows: Sequence[PredictionRow], metric: str, rung: str, folder: RunFolder
) -> FloatArray:
    values = []
    for row in rows:
        value = (row.item_metrics or {}).get(metric)
        if value is None:
            raise DataError(
                f"{folder.predictions_path}: rung {rung} has no {metric} for example {row.id!r}: "
                "a text task's cascade weighs each answer by it; run `rung compare` again"
            )
        values.append(float(value))
    return np.array(values, dtype=np.float64)
