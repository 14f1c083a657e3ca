"""How rung's plots look wherever they are drawn (the run report, the cascade's curve): one
palette, one font. Each rung keeps one colour in every plot, chosen by its position in the
ladder. Plain values: importing this module does not import plotly."""

from __future__ import annotations

__all__ = ["FONT", "PALETTE", "colour"]

PALETTE = (
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
    "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f",
)  # fmt: skip
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"


def colour(i: int) -> str:
    """The colour of the ``i``-th rung of a ladder."""
    return PALETTE[i % len(PALETTE)]
