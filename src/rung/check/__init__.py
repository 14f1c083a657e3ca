"""check: the measurements as a gate in CI. A candidate run is tested against a baseline run
on the same test items: per-item metrics (``items``) go through one-sided paired tests of a
drop beyond a margin (``paired``: exact McNemar, paired bootstrap, Holm), budgets are held to
their limits (``gate``), and the verdict is drawn as Markdown, JSON and JUnit XML
(``render``). ``rung.app.check_spec`` runs the candidate and ties them together.
"""

from rung.check.gate import BudgetCheck, CheckReport, MetricCheck, RunData, gate, rungs_to_gate
from rung.check.items import ITEM_METRICS, ItemMetrics, ItemValues, item_metrics
from rung.check.paired import PairedTest, binom_cdf, holm, mcnemar_exact, paired_bootstrap
from rung.check.render import render_json, render_junit, render_markdown

__all__ = [
    "ITEM_METRICS",
    "BudgetCheck",
    "CheckReport",
    "ItemMetrics",
    "ItemValues",
    "MetricCheck",
    "PairedTest",
    "RunData",
    "binom_cdf",
    "gate",
    "holm",
    "item_metrics",
    "mcnemar_exact",
    "paired_bootstrap",
    "render_json",
    "render_junit",
    "render_markdown",
    "rungs_to_gate",
]
