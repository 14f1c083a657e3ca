"""Run data built by hand for the gate's tests: rungs that got the first k of N items right."""

from __future__ import annotations

from collections.abc import Sequence

from rung.check import RunData
from rung.runs import RunResults
from rung.runs.quality import Metric, TextQuality
from tests.runs.records import prediction, run_results, rung_result

__all__ = ["N", "run_data", "text_run_data"]

N = 100


def run_data(rights: dict[str, int], p95: float = 50.0, cost: float | None = 1.0) -> RunData:
    """A run whose rung ``label`` got the first ``rights[label]`` of N items right."""
    rows = [
        prediction(label, i, gold="positive", predicted="positive" if i < right else "negative")
        for label, right in rights.items()
        for i in range(N)
    ]
    rungs = [
        rung_result(label, right / N, n=N, p95=p95, cost_usd_per_1k=cost)
        for label, right in rights.items()
    ]
    return RunData(results=run_results(rungs, n_test=N), predictions=rows)


def text_run_data(
    task: str, per_item: dict[str, list[dict[str, float]]], reported: Sequence[str]
) -> RunData:
    """A text-task run whose rung ``label`` scored ``per_item[label][i]`` on item i, and whose
    record reported ``reported`` with intervals (the figures themselves do not matter here)."""
    scores = {name: Metric(value=0.5, ci95=(0.4, 0.6)) for name in reported}
    quality = TextQuality(scores=scores, primary=reported[0])
    rows = [
        prediction(label, i, gold="ref", predicted="out").model_copy(
            update={"item_metrics": values}
        )
        for label, items in per_item.items()
        for i, values in enumerate(items)
    ]
    rungs = [rung_result(label, n=len(items)) for label, items in per_item.items()]
    data = run_results(rungs, labels=[], n_test=len(next(iter(per_item.values())))).model_dump(
        by_alias=True
    )
    data["task"]["type"] = task
    for rung in data["rungs"]:
        rung["quality"] = quality.model_dump()
    results = RunResults.model_validate(data)
    return RunData(results=results, predictions=rows)
