"""Run data built by hand for the gate's tests: rungs that got the first k of N items right."""

from __future__ import annotations

from rung.check import RunData
from tests.runs.records import prediction, run_results, rung_result

__all__ = ["N", "run_data"]

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
