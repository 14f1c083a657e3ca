"""report.md of a generative task's run: one table of the rungs' metrics (value and 95%
interval), latency, tokens and throughput; the primary metric first."""

from __future__ import annotations

from rung.runs.task_record import TaskRungResult, TaskRunResults

__all__ = ["metric_names", "task_markdown"]


def metric_names(results: TaskRunResults) -> list[str]:
    """Every metric of the run's rungs, the primary first, in the scorer's order."""
    names: list[str] = []
    for r in results.rungs:
        for name in [r.primary, *r.quality]:
            if name not in names:
                names.append(name)
    return names


def _cell(r: TaskRungResult, name: str) -> str:
    m = r.quality.get(name)
    if m is None:
        return "–"
    return f"{m.value:.3f} [{m.ci95[0]:.3f}, {m.ci95[1]:.3f}]"


def task_markdown(results: TaskRunResults) -> str:
    names = metric_names(results)
    title = results.name or f"{results.task_type} comparison"
    head = ["rung", *names, "p50 ms", "p95 ms", "out tok/req", "req/s", "cached"]
    lines = [
        f"# {title}",
        "",
        f"Task **{results.task_type}**, {results.n_test} test items "
        f"({results.n_train} training items for shots), seed {results.seed}. "
        "Intervals are bootstrap 95% over the test items.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for r in results.rungs:
        cells = [
            r.label,
            *(_cell(r, n) for n in names),
            f"{r.latency_ms.p50:.0f}",
            f"{r.latency_ms.p95:.0f}",
            f"{r.tokens.out_per_request:.1f}",
            f"{r.throughput_per_s:.2f}",
            str(r.cached),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    extras = sorted({k for r in results.rungs for k in r.extras})
    if extras:
        lines += ["", "| rung | " + " | ".join(extras) + " |", "|" + "---|" * (len(extras) + 1)]
        for r in results.rungs:
            vals = [f"{r.extras[k]:.2f}" if k in r.extras else "–" for k in extras]
            lines.append(f"| {r.label} | " + " | ".join(vals) + " |")
    return "\n".join(lines) + "\n"
