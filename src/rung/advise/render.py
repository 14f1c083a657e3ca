"""The advice for people (a Rich table and sentences) and for programs (stable JSON).

The JSON shape is documented in ``rung.advise.advice``; ``advice_json`` only serialises it.
"""

from __future__ import annotations

import json

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from rung import fmt
from rung.advise.advice import Advice, Assessment
from rung.advise.figures import Interval, constraint_short, measured_metrics, metric_word

__all__ = ["advice_json", "advice_renderable", "advice_table", "print_advice"]


def _verdict(a: Assessment, advice: Advice) -> Text:
    if advice.recommended is a:
        return Text("recommended", style="bold green")
    if a.meets_all:
        return Text("meets all", style="green")
    failed = [constraint_short(c.constraint) for c in a.fails]
    unknown = [constraint_short(c.constraint) for c in a.unknown]
    parts = []
    if failed:
        parts.append("fails " + ", ".join(failed))
    if unknown:
        parts.append("unknown " + ", ".join(unknown))
    return Text("; ".join(parts), style="red" if failed else "yellow")


def _figure(q: Interval | None, with_interval: bool) -> str:
    if q is None:
        return "-"
    return (
        f"{q.value:.3f} [dim][{q.low:.2f}-{q.high:.2f}][/]" if with_interval else f"{q.value:.3f}"
    )


def advice_table(advice: Advice) -> Table:
    table = Table(title="Advice", title_justify="left")
    # The run's metrics, the primary first with its interval (classify: accuracy, macro-F1).
    metrics = measured_metrics([a.rung for a in advice.assessments])
    table.add_column("rung", justify="left")
    table.add_column("params", justify="right")
    for i, m in enumerate(metrics):
        table.add_column(
            f"{metric_word(m)} [95% CI]" if i == 0 else metric_word(m), justify="right"
        )
    for name, justify in (
        ("p95 ms", "right"),
        ("$ / 1k req", "right"),
        ("memory", "right"),
        ("verdict", "left"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for a in advice.assessments:
        table.add_row(
            a.label,
            "API" if a.is_api else fmt.params(a.size),
            *(_figure(a.rung.metric(m), with_interval=i == 0) for i, m in enumerate(metrics)),
            f"{a.rung.p95_ms:.0f}",
            fmt.usd(a.cost_per_1k),
            "-" if a.is_api else fmt.bytes_(a.memory_bytes),
            _verdict(a, advice),
        )
    return table


def _section(title: str, lines: list[str], style: str = "") -> list[RenderableType]:
    if not lines:
        return []
    out: list[RenderableType] = [Text(title, style="bold")]
    out.extend(Text(f"  • {line}", style=style) for line in lines)
    return out


def advice_renderable(advice: Advice) -> Group:
    parts: list[RenderableType] = [advice_table(advice)]
    rec = advice.recommended
    if rec is not None:
        parts.append(Text.assemble(("Recommended: ", "bold"), (rec.label, "bold green")))
    else:
        parts.append(Text("No rung meets every constraint.", style="bold red"))
    parts += _section("Why", advice.reasons if rec is not None else advice.reasons[1:])
    parts += _section("Tied", advice.ties)
    parts += _section("Caveats", advice.caveats, "yellow")
    parts += _section("Runners-up", [f"{a.label}: {text}" for a, text in advice.runners_up])
    parts += _section("What would change the choice", advice.what_would_change)
    parts += _section("Notes", advice.notes, "dim")
    return Group(*parts)


def print_advice(console: Console, advice: Advice) -> None:
    console.print(advice_renderable(advice))


def advice_json(advice: Advice) -> str:
    return json.dumps(advice.to_json(), indent=2, ensure_ascii=False)
