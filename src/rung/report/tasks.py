"""report.md of a text task's run (extract, summarize, translate, answer, ...): one table of
the rungs' metrics (value and 95% interval), latency, tokens and throughput; the primary
metric first."""

from __future__ import annotations

from rung.runs.quality import TextQuality
from rung.runs.record import RungResult, RunResults

__all__ = ["metric_names", "task_markdown"]


def _quality(r: RungResult) -> TextQuality:
    assert isinstance(r.quality, TextQuality), "a text task's rungs carry TextQuality"
    return r.quality


def metric_names(results: RunResults) -> list[str]:
    """Every metric of the run's rungs, the primary first, in the scorer's order."""
    names: list[str] = []
    for r in results.rungs:
        q = _quality(r)
        for name in [q.primary, *q.scores]:
            if name not in names:
                names.append(name)
    return names


def _cell(r: RungResult, name: str) -> str:
    m = _quality(r).scores.get(name)
    if m is None:
        return "–"
    return f"{m.value:.3f} [{m.ci95[0]:.3f}, {m.ci95[1]:.3f}]"


def task_markdown(results: RunResults) -> str:
    names = metric_names(results)
    task = results.task
    title = results.name or f"{task.type} comparison"
    head = ["rung", *names, "p50 ms", "p95 ms", "out tok/req", "req/s", "$ / 1k", "cached"]
    lines = [
        f"# {title}",
        "",
        f"Task **{task.type}**, {task.n_test} test items "
        f"({task.n_train} training items for shots), seed {task.seed}. "
        "Intervals are bootstrap 95% over the test items.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for r in results.rungs:
        cost = r.cost_usd_per_1k
        cells = [
            r.label,
            *(_cell(r, n) for n in names),
            f"{r.latency_ms.p50:.0f}",
            f"{r.latency_ms.p95:.0f}",
            f"{r.tokens.out_per_request:.1f}",
            f"{r.throughput_per_s:.2f}",
            f"{cost:.4f}" if cost is not None else "–",
            str(r.cached),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    extras = sorted({k for r in results.rungs for k in _quality(r).extras})
    if extras:
        lines += ["", "| rung | " + " | ".join(extras) + " |", "|" + "---|" * (len(extras) + 1)]
        for r in results.rungs:
            q = _quality(r)
            vals = [f"{q.extras[k]:.2f}" if k in q.extras else "–" for k in extras]
            lines.append(f"| {r.label} | " + " | ".join(vals) + " |")
    for f in results.failed:
        lines += ["", f"Not measured: {f.error}"]
    return "\n".join(lines) + "\n"
