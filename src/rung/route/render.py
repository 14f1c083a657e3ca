"""What ``route calibrate`` and ``route simulate`` show: a Rich table, a few lines of figures,
and the cost-quality curve as a self-contained HTML page (Plotly, its script inline, so the
file opens offline)."""

from __future__ import annotations

import html
import math
from pathlib import Path

from rich.table import Table

from rung.errors import RunError
from rung.route.calibrate import Calibration
from rung.route.simulate import Evaluation
from rung.tasks.metrics import Estimate

__all__ = ["curve_figure", "evaluation_table", "summary_lines", "write_curve_html"]


def _ci(e: Estimate, fmt: str = ".3f") -> str:
    return f"{e.value:{fmt}} [{e.ci95[0]:{fmt}}, {e.ci95[1]:{fmt}}]"


def _pct(e: Estimate) -> str:
    return f"{e.value:.1%} [{e.ci95[0]:.1%}, {e.ci95[1]:.1%}]"


def _money(value: float, evaluation: Evaluation) -> str:
    if evaluation.cost_basis == "usd":
        return f"${value * 1000:.4g}"
    return f"{value:.4g} ms"


def _cost_label(evaluation: Evaluation) -> str:
    return "cost / 1k req" if evaluation.cost_basis == "usd" else "cost (ms of rung time)"


def evaluation_table(evaluation: Evaluation, title: str) -> Table:
    """One row per rung of the cascade: its threshold, who reaches and who stops there."""
    table = Table(title=title, title_justify="left")
    for name, justify in (
        ("rung", "left"),
        ("threshold", "right"),
        ("reaches", "right"),
        ("answers (95% CI)", "right"),
        (f"{evaluation.metric} of its answers", "right"),
        (_cost_label(evaluation), "right"),
    ):
        table.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for s in evaluation.shares:
        table.add_row(
            s.rung,
            "(last rung)" if s.threshold is None else f"≥ {s.threshold:.4g}",
            f"{s.reached.value:.1%}",
            _pct(s.answered),
            "-" if s.accuracy_answered is None else f"{s.accuracy_answered:.3f}",
            _money(s.cost_per_request, evaluation),
        )
    return table


def summary_lines(evaluation: Evaluation, label: str = "cascade") -> list[str]:
    e = evaluation
    diff = e.difference
    lines = [
        f"{e.metric}: {label} {_ci(e.accuracy)} vs {e.reference} alone {_ci(e.reference_accuracy)} "
        f"(difference {diff.value * 100:+.1f} points [{diff.ci95[0] * 100:+.1f}, "
        f"{diff.ci95[1] * 100:+.1f}], paired, n={e.n})",
    ]
    cost = e.cost_per_request
    ref = e.reference_cost_per_request
    unit = "per 1,000 requests" if e.cost_basis == "usd" else "per request (relative)"
    saving = e.saving
    lines.append(
        f"cost {unit}: {label} {_money(cost.value, e)} [{_money(cost.ci95[0], e)}, "
        f"{_money(cost.ci95[1], e)}] vs {_money(ref, e)} had everything gone to {e.reference}"
        + (f" ({saving:+.1%} saved)" if saving is not None else "")
    )
    return lines


def curve_figure(cal: Calibration) -> object:
    """The frontier of the cascades tried (cost against accuracy), each rung alone, the
    target line and the chosen cascade."""
    import plotly.graph_objects as go  # type: ignore[import-untyped]

    from rung.plot_style import FONT, colour

    unit = cal.cost_unit
    xs = [p.cost_per_request * unit for p in (*cal.curve, *cal.singles)]
    positive = [x for x in xs if x > 0]
    log = len(positive) == len(xs) and max(xs) / min(xs) >= 10
    scale = math.log10 if log else float
    low, high = scale(min(xs)), scale(max(xs))
    x_title = "cost per 1,000 requests (USD)" if cal.cost_basis == "usd" else "mean ms per request"
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=[p.cost_per_request * unit for p in cal.curve],
            y=[p.accuracy for p in cal.curve],
            mode="lines+markers",
            line={"color": "#888", "shape": "hv", "width": 1.5},
            marker={"size": 5, "color": "#888"},
            name=f"cheapest cascade for each {cal.metric}",
            customdata=[
                [
                    html.escape(p.policy.describe()),
                    ", ".join(f"{s:.0%}" for s in p.shares),
                ]
                for p in cal.curve
            ],
            hovertemplate="%{customdata[0]}<br>" + cal.metric + " %{y:.3f}, cost %{x:.4g}"
            "<br>answered by each rung: %{customdata[1]}<extra></extra>",
        )
    )
    for i, p in enumerate(cal.singles):
        name = html.escape(p.policy.rungs[0])
        x = p.cost_per_request * unit
        # names point inwards, so that a rung at the right end keeps its name in view
        right = high > low and (scale(x) - low) / (high - low) > 0.5
        fig.add_trace(
            go.Scatter(
                x=[p.cost_per_request * unit],
                y=[p.accuracy],
                mode="markers+text",
                text=[name],
                textposition="top left" if right else "top right",
                marker={"size": 12, "color": colour(i), "symbol": "diamond"},
                name=f"{name} alone",
                hovertemplate=f"{name} alone<br>{cal.metric} %{{y:.3f}}, cost %{{x:.4g}}"
                "<extra></extra>",
            )
        )
    chosen = cal.chosen
    fig.add_trace(
        go.Scatter(
            x=[chosen.cost_per_request.value * unit],
            y=[chosen.accuracy.value],
            mode="markers",
            marker={"size": 20, "color": "#111", "symbol": "star-open", "line": {"width": 2}},
            name="chosen cascade",
            error_y={
                "type": "data",
                "array": [chosen.accuracy.ci95[1] - chosen.accuracy.value],
                "arrayminus": [chosen.accuracy.value - chosen.accuracy.ci95[0]],
                "color": "#111",
            },
            hovertemplate=html.escape(chosen.policy.describe())
            + f"<br>{cal.metric} %{{y:.3f}}, cost %{{x:.4g}}<extra></extra>",
        )
    )
    fig.add_hline(
        y=cal.required_accuracy,
        line={"dash": "dot", "color": "#d62728"},
        annotation_text=f"target: {cal.target:g} × {html.escape(cal.top)}",
    )
    fig.update_layout(
        title={
            "text": f"Cost and {cal.metric} of cascades over {html.escape(' → '.join(cal.order))}",
            "x": 0,
            "font": {"size": 15},
        },
        template="plotly_white",
        height=480,
        font={"family": FONT, "size": 12},
        legend={"orientation": "h", "y": -0.2, "x": 0},
        xaxis_title=x_title + (" — log scale" if log else ""),
        xaxis_type="log" if log else "linear",
        yaxis_title=cal.metric,
    )
    return fig


def write_curve_html(cal: Calibration, path: Path) -> None:
    """The curve as one HTML file with Plotly's script inline (opens without a network)."""
    fig = curve_figure(cal)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.write_html(str(path), include_plotlyjs=True, full_html=True)  # type: ignore[attr-defined]
    except OSError as e:
        raise RunError(f"cannot write {path}: {e}; choose another --plot") from None
