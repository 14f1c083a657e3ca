"""The gate on hand-built run records: verdicts, Holm across rungs, budgets, missing rungs, and
the three renderings (the JUnit XML read back with xml.etree)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from rung.check import (
    CheckReport,
    RunData,
    gate,
    render_json,
    render_junit,
    render_markdown,
    rungs_to_gate,
)
from rung.errors import SpecError
from rung.runs.items import items_sha256_of_rows
from rung.runs.spec import CheckSpec
from tests.check.runs import run_data as _run


def _gate(base: RunData, cand: RunData, spec: CheckSpec | None = None) -> CheckReport:
    return gate(base, cand, spec or CheckSpec(), items_sha256_of_rows(base.predictions))


def test_the_same_answers_pass() -> None:
    base = _run({"small": 70, "large": 90})
    report = _gate(base, base)
    assert not report.failed
    assert [(c.rung, c.metric, c.verdict) for c in report.quality] == [
        ("small", "accuracy", "ok"),
        ("large", "accuracy", "ok"),
    ]
    assert all(c.p_value == 1.0 and c.delta == 0.0 for c in report.quality)


def test_a_drop_beyond_the_margin_fails_and_a_small_one_does_not() -> None:
    report = _gate(_run({"small": 70, "large": 90}), _run({"small": 50, "large": 89}))
    small, large = report.quality
    assert report.failed
    assert small.verdict == "regressed" and small.failed
    assert small.delta == -0.2 and small.baseline == 0.7 and small.candidate == 0.5
    # Holm over the two tests: the smaller p-value is doubled.
    assert small.p_holm == min(1.0, 2 * small.p_value)
    # One item of 100 lost: no drop beyond 0.02 can be shown (p = 1), but 100 items cannot
    # show the drop is within 0.02 either (the interval reaches -0.03): unproven, not failed.
    assert large.p_value == 1.0 and large.ci95[0] < -0.02
    assert large.verdict == "unproven" and not large.failed


def test_an_unproven_metric_fails_only_when_non_inferiority_is_required() -> None:
    base, cand = _run({"small": 70}), _run({"small": 66})
    lenient = _gate(base, cand)
    assert lenient.quality[0].verdict == "unproven" and not lenient.failed
    strict = _gate(base, cand, CheckSpec(require_non_inferiority=True))
    assert strict.quality[0].verdict == "unproven" and strict.failed


def test_margins_per_metric() -> None:
    base, cand = _run({"small": 70}), _run({"small": 50})
    assert not _gate(base, cand, CheckSpec(margins={"accuracy": 0.3})).failed


def test_budgets_absolute_and_relative() -> None:
    base = _run({"small": 70}, p95=50.0, cost=1.0)
    cand = _run({"small": 70}, p95=70.0, cost=1.1)
    spec = CheckSpec(latency_p95_ms=100, latency_p95_ratio=1.2, cost_per_1k_usd=2.0, cost_ratio=1.5)
    report = _gate(base, cand, spec)
    assert [(b.metric, b.rule, b.verdict) for b in report.budgets] == [
        ("latency_p95_ms", "absolute", "ok"),
        ("latency_p95_ms", "1.2× baseline", "over budget"),
        ("cost_usd_per_1k", "absolute", "ok"),
        ("cost_usd_per_1k", "1.5× baseline", "ok"),
    ]
    assert report.failed


def test_a_rung_the_candidate_lost_fails_and_a_new_one_is_noted() -> None:
    report = _gate(_run({"small": 70, "large": 90}), _run({"small": 70, "new": 80}))
    assert report.missing == ["large"] and report.failed
    assert report.notes == ["new is not in the baseline: not gated"]


def test_renderings() -> None:
    report = _gate(
        _run({"small": 70, "large": 90}),
        _run({"small": 50, "large": 90}, p95=80.0),
        CheckSpec(latency_p95_ms=60),
    )
    md = render_markdown(report)
    assert md.startswith("## rung check: ❌ failed")
    assert "| small | accuracy | 0.700 | 0.500 | -0.200 [" in md
    assert "❌ regressed" in md and "❌ over budget" in md
    assert "| small | latency_p95_ms | 50.0 | 80.0 | ≤ 60.0 (absolute) | ❌ over budget |" in md

    data = json.loads(json.dumps(render_json(report)))
    assert data["passed"] is False
    assert data["quality"][0]["verdict"] == "regressed"

    root = ET.fromstring(render_junit(report))
    assert root.tag == "testsuite"
    cases = root.findall("testcase")
    assert [(c.get("classname"), c.get("name")) for c in cases] == [
        ("small", "accuracy"),
        ("large", "accuracy"),
        ("small", "latency_p95_ms (absolute)"),
        ("large", "latency_p95_ms (absolute)"),
    ]
    failed = [c.get("classname") for c in cases if c.find("failure") is not None]
    assert failed == ["small", "small", "large"]
    assert root.get("tests") == "4" and root.get("failures") == "3"


def test_check_rungs_choose_and_an_unknown_one_is_refused() -> None:
    base = _run({"small": 70, "large": 90})
    report = _gate(base, _run({"small": 50, "large": 90}), CheckSpec(rungs=["large"]))
    assert [c.rung for c in report.quality] == ["large"] and not report.failed
    with pytest.raises(SpecError, match=r"check\.rungs names 'lage'.*did you mean 'large'"):
        rungs_to_gate(CheckSpec(rungs=["lage"]), base.results)
