"""The terminal table of a run: a task with many metrics shows the first few, and says which
others the report holds."""

from __future__ import annotations

from rich.console import Console

from rung.cli.display import SHOWN_METRICS, summary_table
from rung.runs.quality import Metric, TextQuality
from tests.runs.records import run_results, rung_result

NAMES = ["token_f1", "rouge_l", "from_context", "citation_recall", "retrieval_recall", "mrr"]


def _render(names: list[str]) -> str:
    quality = TextQuality(
        scores={n: Metric(value=0.5, ci95=(0.4, 0.6)) for n in names}, primary=names[0]
    )
    results = run_results([rung_result("small")], labels=[])
    results = results.model_copy(
        update={"rungs": [results.rungs[0].model_copy(update={"quality": quality})]}
    )
    console = Console(width=400, record=True)
    console.print(summary_table(results))
    return console.export_text()


def test_many_metrics_show_the_first_few_and_name_the_rest() -> None:
    text = _render(NAMES)
    shown, rest = NAMES[:SHOWN_METRICS], NAMES[SHOWN_METRICS:]
    assert all(f"{n} [95% CI]" in text for n in shown)
    assert not any(f"{n} [95% CI]" in text for n in rest)
    assert f"2 more metrics in report.md: {', '.join(rest)}" in text


def test_few_metrics_are_all_shown_without_a_caption() -> None:
    text = _render(NAMES[:3])
    assert all(f"{n} [95% CI]" in text for n in NAMES[:3]) and "more metrics" not in text
