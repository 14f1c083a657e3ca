"""Rich renderings for the CLI: progress bars and tables."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from rung import fmt
from rung.runs.record import Metric, RunResults

__all__ = ["LiveDisplay", "RichProgress", "summary_table"]


class LiveDisplay:
    """A Rich ``Progress`` shown for as long as the display is used as a context manager."""

    _progress: Progress

    def __enter__(self) -> Self:
        self._progress.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.__exit__(exc_type, exc, tb)


class RichProgress(LiveDisplay):
    """One bar per rung: loading, training, then answering with a count and an ETA."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.fields[rung]}[/]"),
            TextColumn("{task.fields[step]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self._tasks: dict[str, TaskID] = {}

    def rung_started(self, label: str, total: int, cached: int) -> None:
        step = f"{cached} cached" if cached else "starting"
        self._tasks[label] = self._progress.add_task(
            "", total=total, completed=cached, rung=label, step=step
        )

    def step(self, label: str, message: str) -> None:
        self._progress.update(self._tasks[label], step=message)

    def advance(self, label: str, n: int) -> None:
        self._progress.advance(self._tasks[label], n)

    def rung_finished(self, label: str) -> None:
        self._progress.update(self._tasks[label], step="[green]done[/]")

    def rung_failed(self, label: str, message: str) -> None:
        if label in self._tasks:
            self._progress.update(self._tasks[label], step="[red]failed[/]")
        # The bar keeps one line; the reason is printed whole above the bars.
        self._progress.console.print(f"[red]{escape(label)} failed:[/] {escape(message)}")


#: how a table heads a metric whose name is not a word
METRIC_WORDS = {"macro_f1": "macro-F1"}


def _ci(q: Metric) -> str:
    low, high = q.ci95
    return f"{q.value:.3f} [dim][{low:.2f}-{high:.2f}][/]"


def _opt(value: float | None, pattern: str) -> str:
    return "?" if value is None else pattern.format(value)


#: metrics a terminal table shows beside the rung's latency, cost and size
SHOWN_METRICS = 4


def summary_table(results: RunResults) -> Table:
    table = Table(title=results.name or "Comparison", title_justify="left")
    # The task's headline metrics, the primary first (classify: accuracy, macro-F1); a task
    # with many (an answer task has ten) shows the first few, the report has them all.
    names: list[str] = []
    for r in results.rungs:
        for name in [r.quality.primary_metric(), *r.quality.metrics()]:
            if name not in names:
                names.append(name)
    if len(names) > SHOWN_METRICS:
        rest = names[SHOWN_METRICS:]
        names = names[:SHOWN_METRICS]
        table.caption = f"{len(rest)} more metrics in report.md: {', '.join(rest)}"
        table.caption_justify = "left"
    table.add_column("rung", justify="left")
    for name in names:
        table.add_column(f"{METRIC_WORDS.get(name, name)} [95% CI]", justify="right")
    for name, justify in (
        ("p50 ms", "right"),
        ("p95 ms", "right"),
        ("best req/s", "right"),
        ("peak MB", "right"),
        ("$/1k req", "right"),
        ("params", "right"),
        ("size", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for r in results.rungs:
        found = r.quality.metrics()
        table.add_row(
            r.label,
            *(_ci(found[n]) if n in found else "-" for n in names),
            f"{r.latency_ms.p50:.1f}",
            f"{r.latency_ms.p95:.1f}",
            f"{r.best_throughput():.1f}",
            _opt(r.memory_mb.peak_rss, "{:,.0f}"),
            _opt(r.cost_usd_per_1k, "{:.4f}"),
            fmt.params(r.params, "?"),
            fmt.bytes_(r.file_size_bytes, "?"),
        )
    for b in results.baselines:
        table.add_row(
            f"[dim italic]{b.name} ({b.rule})[/]",
            _ci(b.accuracy),
            _ci(b.macro_f1),
            *["[dim]-[/]"] * 7,
        )
    return table
