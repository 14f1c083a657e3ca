"""The report's plots, as Plotly figures built from the rungs of the run record.

Every string that comes from the user (rung labels, class labels, cost notes) is HTML-escaped
before it reaches Plotly, because Plotly reads tags such as ``<b>`` and ``<a>`` in text.
Each rung keeps one colour in every plot, chosen by its position in the ladder
(``rung.plot_style``).
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go  # type: ignore[import-untyped]
from plotly.subplots import make_subplots  # type: ignore[import-untyped]

from rung.plot_style import FONT, colour
from rung.runs.record import LoadLevel, RungResult, classify_quality

__all__ = [
    "ParetoAxis",
    "confusion_figure",
    "load_figure",
    "load_levels",
    "pareto_axes",
    "pareto_figure",
    "pareto_frontier",
]

MB = 2**20


def _t(text: object) -> str:
    return html.escape(str(text), quote=False)


def _layout(fig: go.Figure, title: str, height: int) -> go.Figure:
    fig.update_layout(
        title={"text": title, "x": 0, "xanchor": "left", "font": {"size": 15}},
        template="plotly_white",
        height=height,
        margin={"l": 60, "r": 20, "t": 50, "b": 55},
        font={"family": FONT, "size": 12},
        legend={"orientation": "h", "y": -0.2, "x": 0},
        hoverlabel={"align": "left"},
    )
    return fig


def pareto_frontier(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats: lower or equal x (cost, latency, memory)
    with higher or equal y (quality), better in at least one of the two."""
    return [
        i
        for i, (x, y) in enumerate(points)
        if not any(
            (x2 <= x and y2 >= y) and (x2 < x or y2 > y)
            for j, (x2, y2) in enumerate(points)
            if j != i
        )
    ]


@dataclass(frozen=True)
class ParetoAxis:
    """One x figure the quality is plotted against (lower is better)."""

    key: str  # used in the plot's element id
    title: str  # the plot's title
    label: str  # the x axis title
    value: Callable[[RungResult], float | None]
    hover: Callable[[RungResult], str]  # plain text, escaped when drawn


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) and math.isfinite(x) else None


def _cost_hover(r: RungResult) -> str:
    return r.cost.detail


def _memory_hover(r: RungResult) -> str:
    mem = r.memory_mb
    parts = [
        f"{name} {v:,.0f} MB"
        for name, value in (
            ("model RSS", mem.model_rss),
            ("baseline", mem.baseline_rss),
            ("GPU", mem.peak_gpu),
            ("estimate", mem.estimate),
            ("file", mem.file),
        )
        if (v := _num(value)) is not None
    ]
    return ", ".join(parts)


def _peak_rss(r: RungResult) -> float | None:
    return _num(r.memory_mb.peak_rss)


def _estimate(r: RungResult) -> float | None:
    return _num(r.memory_mb.estimate)


def pareto_axes(rungs: Sequence[RungResult]) -> list[ParetoAxis]:
    """Cost, p95 latency and memory. Memory is the measured peak RSS; when no rung was
    measured, the estimate from model metadata stands in and the axis says so."""
    measured = any(_peak_rss(r) is not None for r in rungs)
    mem_label = (
        "peak memory, RSS (MB)"
        if measured
        else "estimated memory from model metadata, not measured (MB)"
    )
    return [
        ParetoAxis(
            "cost",
            "Quality against cost per 1,000 requests",
            "USD per 1,000 requests",
            lambda r: _num(r.cost_usd_per_1k),
            _cost_hover,
        ),
        ParetoAxis(
            "latency",
            "Quality against p95 latency",
            "p95 latency, one request at a time (ms)",
            lambda r: _num(r.latency_ms.p95),
            lambda r: "",
        ),
        ParetoAxis(
            "memory",
            "Quality against peak memory" if measured else "Quality against estimated memory",
            mem_label,
            _peak_rss if measured else _estimate,
            _memory_hover,
        ),
    ]


def _scaled(xs: Sequence[float], log: bool) -> tuple[list[float], list[float] | None]:
    """Each x as a fraction of the drawn range, and that range (in log10 units on a log axis,
    as Plotly wants), with a margin so that markers do not sit on the plot's edge."""
    if not xs:
        return [], None
    vals = [math.log10(x) for x in xs] if log else list(xs)
    low, high = (min(vals), max(vals)) if log else (min(0.0, min(vals)), max(vals))
    pad = 0.08 * (high - low) or (0.5 if log else 1.0)
    low, high = low - pad, high + pad
    return [(v - low) / (high - low) for v in vals], [low, high]


def pareto_figure(
    rungs: Sequence[RungResult], axis: ParetoAxis, metric: str | None = None
) -> go.Figure:
    """Quality (with its 95% interval; ``metric``, by default the task's primary one) against
    ``axis`` for the rungs whose x is known, the frontier drawn as a line through its points
    and with filled markers."""
    if metric is None:
        metric = rungs[0].quality.primary_metric() if rungs else "accuracy"
    shown = [(i, r, x) for i, r in enumerate(rungs) if (x := axis.value(r)) is not None]
    points = [(x, r.quality.metrics()[metric].value) for _, r, x in shown]
    frontier = set(pareto_frontier(points))
    xs = [p[0] for p in points]
    log = bool(xs) and min(xs) > 0 and max(xs) / min(xs) >= 10
    where, x_range = _scaled(xs, log)
    fig = go.Figure()
    front = sorted(points[k] for k in frontier)
    fig.add_trace(
        go.Scatter(
            x=[p[0] for p in front],
            y=[p[1] for p in front],
            mode="lines",
            line={"color": "#888", "dash": "dash", "width": 1.5, "shape": "hv"},
            name="Pareto frontier",
            hoverinfo="skip",
        )
    )
    for k, (i, r, x) in enumerate(shown):
        q = r.quality.metrics()[metric]
        value, (low, high) = q.value, q.ci95
        on_front = k in frontier
        extra = axis.hover(r)
        fig.add_trace(
            go.Scatter(
                x=[x],
                y=[value],
                mode="markers+text",
                name=_t(r.label),
                text=[_t(r.label)],
                # labels point inwards, so that a rung at either end keeps its name in view
                textposition="top left" if where[k] > 0.5 else "top right",
                marker={
                    "size": 13 if on_front else 11,
                    "color": colour(i),
                    "symbol": "circle" if on_front else "circle-open",
                    "line": {"width": 2, "color": colour(i)},
                },
                error_y={
                    "type": "data",
                    "array": [float(high) - value],
                    "arrayminus": [value - float(low)],
                    "color": colour(i),
                    "thickness": 1.5,
                },
                customdata=[
                    [
                        f"{low:.3f}–{high:.3f}",
                        "on the frontier" if on_front else "beaten by a frontier rung",
                        _t(extra),
                    ]
                ],
                hovertemplate=(
                    f"<b>{_t(r.label)}</b><br>{metric} %{{y:.3f}} [%{{customdata[0]}}]"
                    f"<br>{_t(axis.label)}: %{{x:,.4g}}<br>%{{customdata[1]}}"
                    + ("<br>%{customdata[2]}" if extra else "")
                    + "<extra></extra>"
                ),
            )
        )
    fig.update_xaxes(
        title_text=_t(axis.label) + (" — log scale" if log else ""),
        type="log" if log else "linear",
        range=x_range,
    )
    fig.update_yaxes(title_text=f"{metric.replace('_', '-')} (95% CI)", range=[-0.03, 1.08])
    return _layout(fig, axis.title, 430)


def load_levels(r: RungResult) -> list[LoadLevel]:
    """A rung's load-test levels, by concurrency."""
    return sorted(r.load or [], key=lambda lv: lv.concurrency)


def load_figure(rungs: Sequence[RungResult]) -> go.Figure | None:
    """p95 latency and throughput at each concurrency level, one line per rung; levels where
    requests failed are drawn with a cross. None when no rung was load-tested."""
    if not any(load_levels(r) for r in rungs):
        return None
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("p95 latency (ms)", "throughput (requests/s)"),
        horizontal_spacing=0.1,
    )
    every: set[int] = set()
    for i, r in enumerate(rungs):
        levels = load_levels(r)
        if not levels:
            continue
        conc = [lv.concurrency for lv in levels]
        every.update(conc)
        lat = [lv.latency_ms for lv in levels]
        symbols = ["x" if lv.errors else "circle" for lv in levels]
        custom = [
            [
                _num(lt.p50),
                _num(lt.p99),
                lv.requests,
                lv.errors,
                _num(lv.output_tokens_per_s),
            ]
            for lv, lt in zip(levels, lat, strict=True)
        ]
        hover = (
            f"<b>{_t(r.label)}</b><br>%{{x}} concurrent users<br>%{{y:,.4g}}"
            "<br>p50 %{customdata[0]:,.0f} ms, p99 %{customdata[1]:,.0f} ms"
            "<br>%{customdata[2]} requests, %{customdata[3]} errors"
            "<br>%{customdata[4]:,.1f} output tokens/s<extra></extra>"
        )
        style = {
            "mode": "lines+markers",
            "line": {"color": colour(i), "width": 2},
            "marker": {"symbol": symbols, "size": 9, "color": colour(i)},
            "legendgroup": str(i),
            "customdata": custom,
            "hovertemplate": hover,
        }
        fig.add_trace(
            go.Scatter(x=conc, y=[_num(lt.p95) for lt in lat], name=_t(r.label), **style),
            row=1,
            col=1,
        )
        fig.add_trace(
            go.Scatter(
                x=conc,
                y=[_num(lv.throughput_per_s) for lv in levels],
                name=_t(r.label),
                showlegend=False,
                **style,
            ),
            row=1,
            col=2,
        )
    ticks = sorted(every)
    fig.update_xaxes(title_text="concurrent users", type="log", tickvals=ticks, ticktext=ticks)
    fig.update_yaxes(rangemode="tozero")
    return _layout(fig, "Latency and throughput against concurrent users", 430)


def confusion_figure(r: RungResult, i: int) -> go.Figure:
    """Counts of gold (rows) against predicted (columns, with invalid answers last)."""
    conf = classify_quality(r).confusion
    rows = [_t(lab) for lab in conf.labels]
    cols = [_t(lab) for lab in conf.columns]
    matrix = conf.matrix
    share = [[v / (sum(row) or 1) for v in row] for row in matrix]
    many = len(cols) > 20
    fig = go.Figure(
        go.Heatmap(
            z=matrix,
            x=cols,
            y=rows,
            customdata=share,
            colorscale=[[0, "#f7fbff"], [1, colour(i)]],
            showscale=False,
            xgap=1,
            ygap=1,
            texttemplate="" if many else "%{z}",
            hovertemplate=(
                "gold %{y}, predicted %{x}: %{z} (%{customdata:.0%} of the row)<extra></extra>"
            ),
        )
    )
    fig.update_yaxes(title_text="gold", autorange="reversed", type="category")
    fig.update_xaxes(title_text="predicted", type="category", side="bottom")
    height = min(900, 170 + 34 * len(rows))
    return _layout(fig, _t(r.label), height)
