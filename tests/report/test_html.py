"""report.html from a real compare run, checked as a page and in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import plotly.offline  # type: ignore[import-untyped]
import pytest

from rung.advise import Constraints, advice_for_results
from rung.app import compare_spec
from rung.compare.load import LevelResult
from rung.compare.memory import MemoryReading
from rung.report.html import render_html, write_html
from rung.report.markdown import find_disagreements
from rung.report.plots import pareto_frontier
from rung.runs import LoadLevel, MemoryMb, PredictionRow, RunFolder, RunResults, parse_spec
from tests.report.chromium import CHROMIUM, open_page

Inputs = tuple[RunResults, list[PredictionRow], dict[str, Any]]

RUNGS = ["encoder:minilm-l6", "llamacpp:smollm2-135m-instruct"]
PARETO = ["plot-pareto-cost", "plot-pareto-latency", "plot-pareto-memory"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory, fpb_path: Path) -> Iterator[Path]:
    """One real comparison of two bundled rungs on 30 financial-phrasebank sentences."""
    root = tmp_path_factory.mktemp("html-run")
    spec = parse_spec(
        {
            "name": "fpb <html> & report",
            "task": {
                "type": "classify",
                "data": {"path": str(fpb_path)},
                "labels": ["negative", "neutral", "positive"],
                "train_size": 200,
                "test_size": 30,
                "seed": 1,
            },
            "models": RUNGS,
            # The load test and the memory subprocess are measured elsewhere; here the run only
            # has to be real and quick.
            "measure": {"load": None, "memory": False},
        }
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RUNG_CACHE_DIR", str(root / "cache"))
        mp.setenv("RUNG_FILES_DIR", str(tmp_path_factory.getbasetemp() / "rung-files"))
        compare_spec(spec, root, root / "run")
    yield root / "run"


def with_measurements(results: RunResults) -> RunResults:
    """A copy of ``results`` with load, memory and cost figures. They are synthetic but shaped
    by the classes rung's own measuring code writes (LevelResult, MemoryReading): they exercise
    the plots that a run with ``measure.load`` and ``measure.memory`` on would draw."""
    out = results.model_copy(deep=True)
    for k, rung in enumerate(out.rungs):
        base, speed = rung.latency_ms.p95, rung.throughput_per_s
        levels = []
        for users in (1, 4, 16):
            failed = 3 if k == 1 and users == 16 else 0
            levels.append(
                LoadLevel.model_validate(
                    LevelResult(
                        concurrency=users,
                        requests=48 - failed,
                        errors=failed,
                        wall_s=48 / (speed * min(users, 4) ** 0.5),
                        throughput_per_s=speed * min(users, 4) ** 0.5,
                        output_tokens_per_s=rung.tokens.out_per_request * speed,
                        latency_ms={
                            "p50": base * users**0.7 / 2,
                            "p95": base * users**0.7,
                            "p99": base * users**0.8,
                            "mean": base * users**0.7 / 1.8,
                        },
                        first_error="TimeoutError: no answer within 30 s" if failed else None,
                    ).to_json()
                )
            )
        rung.load = levels
        reading = MemoryReading(
            peak_rss_mb=(410.0, 260.0)[k], baseline_rss_mb=120.0, peak_gpu_mb=None, pid=1
        )
        rung.memory_mb = MemoryMb.model_validate(rung.memory_mb.model_dump() | reading.to_json())
        rung.cost_usd_per_1k = rung.cost_usd_per_1k or 0.01 * (k + 1)
    return out


@pytest.fixture(scope="module")
def inputs(run_dir: Path) -> Inputs:
    folder = RunFolder(run_dir)
    results = folder.results()
    advice = advice_for_results(results, Constraints()).to_json()
    return with_measurements(results), folder.predictions(), advice


@pytest.fixture(scope="module")
def report(run_dir: Path, inputs: Inputs) -> Path:
    return write_html(run_dir / "report.html", *inputs)


def _outside_plotly(page: str) -> str:
    """The page without the inlined plotly.js, whose code holds URLs and tags of its own."""
    js = plotly.offline.get_plotlyjs()
    assert page.count(js) == 1, "plotly.js must be inlined exactly once"
    return page.replace(js, "")


def test_page_is_self_contained(report: Path) -> None:
    rest = _outside_plotly(report.read_text(encoding="utf-8"))
    assert not re.search(r"<(script|img|iframe|link|source|embed)\b[^>]*\b(src|href)=", rest, re.I)
    assert all(h.startswith("#") for h in re.findall(r'href="([^"]*)"', rest))
    assert not re.search(r"@import|url\(", rest)
    assert "https://" not in rest and "http://" not in rest


def test_page_shows_every_measured_figure(report: Path, inputs: Inputs) -> None:
    results, _, advice = inputs
    page = _outside_plotly(report.read_text(encoding="utf-8"))
    for div in [*PARETO, "plot-load", "plot-confusion-0", "plot-confusion-1"]:
        assert f'id="{div}"' in page
    acc = results.rungs[0].quality.accuracy
    assert f"{acc.value:.3f}" in page and f"{acc.ci95[0]:.3f}" in page
    assert "fpb &lt;html&gt; &amp; report" in page  # the run's name, escaped
    assert f"Recommended: <b>{advice['recommended']['label']}</b>" in page
    assert "TimeoutError: no answer within 30 s" in page  # the load table's first error
    assert "openai:gpt-4o-mini" in page  # the counterfactual price of a model not run


def test_a_figure_nobody_measured_is_left_out_with_a_note(inputs: Inputs) -> None:
    results, predictions, _ = inputs
    bare = results.model_copy(deep=True)
    for rung in bare.rungs:
        rung.cost_usd_per_1k = None
        rung.load = None
    page = render_html(bare, predictions)
    assert 'id="plot-pareto-cost"' not in page and 'id="plot-load"' not in page
    assert "Quality against cost per 1,000 requests: not drawn" in page
    assert "This run has no load test" in page
    assert 'id="advice"' not in page


def test_frontier_keeps_the_rungs_nothing_beats() -> None:
    #            cheap, bad   dear, good   dear, bad    tie with the first
    points = [(1.0, 0.5), (10.0, 0.9), (12.0, 0.6), (1.0, 0.5)]
    assert pareto_frontier(points) == [0, 1, 3]
    assert pareto_frontier([]) == []


@pytest.fixture(scope="module")
def browser() -> None:
    if CHROMIUM is None:
        pytest.fail("chromium is not installed: apt-get install -y chromium (.ci/run does)")


@pytest.mark.slow
def test_report_renders_in_chromium(
    browser: None, report: Path, run_dir: Path, inputs: Inputs
) -> None:
    results, predictions, _ = inputs
    with open_page(report) as page:
        drawn = page.evaluate(
            "Object.fromEntries(Array.from(document.querySelectorAll('.plotly-graph-div'))"
            ".map(d => [d.id, d.classList.contains('js-plotly-plot') ? "
            "d.querySelectorAll('.main-svg .trace, .main-svg .hm').length : 0]))"
        )
        # per Pareto plot: the frontier line and one trace per rung; per heatmap, its cells
        assert drawn == {
            **dict.fromkeys(PARETO, 3),
            "plot-load": 4,
            "plot-confusion-0": 1,
            "plot-confusion-1": 1,
        }
        cells = len(results.task.labels) * (len(results.task.labels) + 1)
        assert (
            page.evaluate("document.querySelectorAll('#plot-confusion-1 .heatmap-label').length")
            == cells
        )

        names = [r.label for r in results.rungs]
        by_rung = {n: [p for p in predictions if p.rung == n] for n in names}
        records = [[(p.id, p.text, p.gold, p.predicted) for p in by_rung[n]] for n in names]
        found = find_disagreements(names, records, limit=10_000)
        assert found, "the two rungs should disagree somewhere on 30 examples"

        def shown(gold: str, rung: str) -> int:
            return int(
                page.evaluate(
                    f"""(() => {{
                    const g = document.getElementById('filter-gold'), r = document.getElementById('filter-rung');
                    g.value = {json.dumps(gold)}; g.dispatchEvent(new Event('change'));
                    r.value = {json.dumps(rung)}; r.dispatchEvent(new Event('change'));
                    return Array.from(document.querySelectorAll('#disagreements tbody tr'))
                      .filter(tr => tr.offsetParent !== null).length; }})()"""
                )
            )

        assert shown("", "") == len(found)
        for gold in results.task.labels:
            assert shown(gold, "") == sum(d.gold == gold for d in found)
        small_wrong = sum(d.answers[names[1]] != d.gold for d in found)
        assert shown("", "wrong:1") == small_wrong
        assert shown("neutral", "right:0") == sum(
            d.gold == "neutral" and d.answers[names[0]] == d.gold for d in found
        )
        assert page.evaluate("document.getElementById('filter-count').textContent").endswith(
            f"of {len(found)} shown"
        )
        shown("", "")
        shot = page.screenshot(run_dir / "report.png")
        assert page.errors == []
        assert page.external_requests == []
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000


@pytest.mark.slow
def test_user_text_stays_text(browser: None, tmp_path: Path, inputs: Inputs) -> None:
    results, predictions, advice = inputs
    evil = '<img src=x onerror="document.title=1">&'
    odd = results.model_copy(deep=True)
    odd.rungs[0].label = evil
    rows = [p.model_copy(update={"rung": evil}) if p.rung == RUNGS[0] else p for p in predictions]
    path = write_html(tmp_path / "odd.html", odd, rows, advice)
    with open_page(path) as page:
        assert page.evaluate("document.querySelectorAll('img').length") == 0
        legend = page.evaluate("document.querySelector('#plot-pareto-latency .legend').textContent")
        assert evil in legend  # shown as written, not read as a tag
        assert page.errors == []


@pytest.mark.slow
def test_a_broken_script_is_caught(browser: None, tmp_path: Path, report: Path) -> None:
    """The check above would pass on a page whose scripts never ran, unless errors are seen."""
    broken = tmp_path / "broken.html"
    shutil.copy(report, broken)
    page_text = broken.read_text(encoding="utf-8")
    page_text = page_text.replace("</main>", "<script>var half = ;</script></main>", 1)
    page_text = page_text.replace("Plotly.newPlot(", "Plotly.newPlott(", 1)
    broken.write_text(page_text, encoding="utf-8")
    with open_page(broken) as page:
        errors = "\n".join(page.errors)
    assert "SyntaxError" in errors
    assert "newPlott is not a function" in errors
