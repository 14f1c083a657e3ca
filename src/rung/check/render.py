"""The gate's report three ways: Markdown for a pull request, JSON for scripts, JUnit XML for
the CI's test view (one test case per rung × metric, a failure for each regression)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import asdict
from typing import Any

from rung.check.gate import CheckReport

__all__ = ["render_json", "render_junit", "render_markdown"]

_MARK = {
    "ok": "✅ ok",
    "regressed": "❌ regressed",
    "unproven": "⚠️ unproven",
    "over budget": "❌ over budget",
    "missing": "❌ missing",
}


def _num(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _p(p: float) -> str:
    return f"{p:.2g}" if p < 0.001 else f"{p:.3f}"


def _verdict(verdict: str, failed: bool) -> str:
    # An unproven metric fails only when the spec requires non-inferiority.
    return "❌ unproven" if verdict == "unproven" and failed else _MARK[verdict]


def render_markdown(report: CheckReport, title: str = "rung check") -> str:
    status = "❌ failed" if report.failed else "✅ passed"
    lines = [f"## {title}: {status}", ""]
    if report.quality:
        lines += [
            "| rung | metric | baseline | candidate | delta (95% CI) | margin | p-value "
            "| Holm-adjusted | verdict |",
            "|---|---|---:|---:|---|---:|---:|---:|---|",
        ]
        for c in report.quality:
            lines.append(
                f"| {c.rung} | {c.metric} | {_num(c.baseline)} | {_num(c.candidate)} "
                f"| {c.delta:+.3f} [{c.ci95[0]:+.3f}, {c.ci95[1]:+.3f}] | {c.margin:g} "
                f"| {_p(c.p_value)} | {_p(c.p_holm)} | {_verdict(c.verdict, c.failed)} |"
            )
        lines.append("")
    if report.budgets:
        lines += [
            "| rung | budget | baseline | candidate | limit | verdict |",
            "|---|---|---:|---:|---|---|",
        ]
        for b in report.budgets:
            digits = 1 if b.metric.endswith("_ms") else 4
            lines.append(
                f"| {b.rung} | {b.metric} | {_num(b.baseline, digits)} "
                f"| {_num(b.candidate, digits)} | ≤ {b.limit:.{digits}f} ({b.rule}) "
                f"| {_MARK[b.verdict]} |"
            )
        lines.append("")
    for rung in report.missing:
        lines.append(f"- ❌ {rung}: measured in the baseline, not in the candidate")
    for note in report.notes:
        lines.append(f"- {note}")
    lines.append(
        f"\nOne-sided paired tests of a drop beyond the margin (exact McNemar for right/wrong "
        f"metrics, paired bootstrap otherwise), Holm-corrected at alpha {report.alpha:g}; "
        f"test items sha256 `{report.items_sha256[:12]}`."
    )
    return "\n".join(lines) + "\n"


def render_json(report: CheckReport) -> dict[str, Any]:
    return {"passed": not report.failed, **asdict(report)}


def render_junit(report: CheckReport, suite: str = "rung check") -> str:
    cases: list[tuple[str, str, str | None]] = []  # (classname, name, failure message)
    for c in report.quality:
        message = None
        if c.failed:
            message = (
                f"{c.metric} {c.baseline:.3f} → {c.candidate:.3f} (delta {c.delta:+.3f}, "
                f"95% CI [{c.ci95[0]:+.3f}, {c.ci95[1]:+.3f}]), margin {c.margin:g}, "
                f"Holm-adjusted p {_p(c.p_holm)}: {c.verdict}"
            )
        cases.append((c.rung, c.metric, message))
    for b in report.budgets:
        message = None
        if b.failed:
            message = f"{b.metric} {_num(b.candidate, 4)} over {b.limit:.4g} ({b.rule})"
        cases.append((b.rung, f"{b.metric} ({b.rule})", message))
    for rung in report.missing:
        cases.append((rung, "measured", "measured in the baseline, not in the candidate"))
    root = ET.Element(
        "testsuite",
        name=suite,
        tests=str(len(cases)),
        failures=str(sum(1 for *_, m in cases if m is not None)),
        errors="0",
    )
    for classname, name, message in cases:
        case = ET.SubElement(root, "testcase", classname=classname, name=name)
        if message is not None:
            ET.SubElement(case, "failure", message=message, type="regression").text = message
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
