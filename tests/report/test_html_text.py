"""A text task's report page: its answers side by side with their per-item scores, the items
where the rungs differ most first, every text escaped."""

from __future__ import annotations

from rung.report.html import render_html
from tests.check.runs import text_run_data


def test_text_examples_put_the_widest_gap_first() -> None:
    run = text_run_data(
        "summarize",
        {
            "small": [{"rougeL": 0.5}, {"rougeL": 0.1}, {"rougeL": 0.3}],
            "large": [{"rougeL": 0.5}, {"rougeL": 0.9}, {"rougeL": 0.4}],
        },
        ["rougeL"],
    )
    rows = [r.model_copy(update={"generated": f"<b>{r.rung} {r.id}</b>"}) for r in run.predictions]
    page = render_html(run.results, rows)
    assert 'id="examples"' in page and '<a href="#examples">Examples</a>' in page
    table = page[page.index('id="text-examples"') :]
    # item 1 (0.1 vs 0.9) before item 2 (0.3 vs 0.4) before item 0 (tied)
    assert table.index("<td>1</td>") < table.index("<td>2</td>") < table.index("<td>0</td>")
    assert "rougeL 0.90" in table and "&lt;b&gt;large 1&lt;/b&gt;" in table
    assert "<b>large" not in page
    assert 'id="disagree"' not in page and 'id="confusion"' not in page


def test_one_rung_lists_its_lowest_scores_first() -> None:
    run = text_run_data("translate", {"only": [{"chrf": 70.0}, {"chrf": 12.5}]}, ["chrf"])
    table = render_html(run.results, run.predictions)
    table = table[table.index('id="text-examples"') :]
    assert table.index("<td>1</td>") < table.index("<td>0</td>") and "chrf 12.50" in table
