"""report.md: the comparison as a person reads it, from the run record and the predictions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rung import fmt
from rung.runs.record import LoadLevel, Metric, RungResult, RunResults, classify_quality

__all__ = ["Disagreement", "find_disagreements", "render_markdown"]


@dataclass(frozen=True)
class Disagreement:
    id: str
    text: str
    gold: str
    answers: dict[str, str | None]  # rung label -> predicted label


def find_disagreements(
    rung_labels: Sequence[str],
    records: Sequence[Sequence[tuple[str, str, str, str | None]]],
    limit: int = 20,
) -> list[Disagreement]:
    """Examples on which the rungs gave different answers; ``records[r]`` lists, for rung r,
    (id, text, gold, predicted) in test order. Examples where some rung is right and another
    wrong come first, since those are the ones that decide between rungs."""
    found = []
    for row in zip(*records, strict=True):
        answers = {rung_labels[r]: row[r][3] for r in range(len(rung_labels))}
        if len(set(answers.values())) > 1:
            first = row[0]
            found.append(Disagreement(id=first[0], text=first[1], gold=first[2], answers=answers))
    found.sort(key=lambda d: not any(a == d.gold for a in d.answers.values()))
    return found[:limit]


def _est(q: Metric) -> str:
    low, high = q.ci95
    return f"{q.value:.3f} [{low:.3f}, {high:.3f}]"


def _secs(v: float | None) -> str:
    return "?" if v is None else f"{v:.1f}"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _money(v: float | None) -> str:
    if v is None:
        return "?"
    return f"${v:.4f}" if v < 1 else f"${v:,.2f}"


def _mb(v: float | None) -> str:
    return "?" if v is None else f"{v:,.0f} MB"


def _cost_memory_section(results: RunResults) -> list[str]:
    rungs = results.rungs
    if not rungs:
        return []
    out = [
        "",
        "## Memory and money",
        "",
        "Peak memory is the resident set of a fresh process that loaded the rung and answered a "
        "few requests; the estimate is weights plus KV cache from the model's own metadata.",
        "",
        "| rung | peak RSS | of which the model | estimate | file | $ per 1k requests | how |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rungs:
        m = r.memory_mb
        out.append(
            f"| {_md_cell(r.label)} | {_mb(m.peak_rss)} | {_mb(m.model_rss)} "
            f"| {_mb(m.estimate)} | {_mb(m.file)} | {_money(r.cost_usd_per_1k)} "
            f"| {_md_cell(r.cost.detail)} |"
        )
    others = [c for c in results.counterfactual if not c.in_ladder]
    if others:
        out += ["", "The same workload on API models that were not run:", ""]
        out += ["| model | $ per 1k requests | how |", "|---|---|---|"]
        for c in others:
            out.append(f"| {_md_cell(c.label)} | {_money(c.usd_per_1k)} | {_md_cell(c.basis)} |")
    return out


def _ttft(level: LoadLevel) -> str:
    ttft = level.ttft_ms
    return "-" if not ttft else f"{ttft.p50:.1f} / {ttft.p95:.1f}"


def _load_section(rungs: Sequence[RungResult]) -> list[str]:
    if not any(r.load for r in rungs):
        return []
    out = [
        "",
        "## Under load",
        "",
        "Closed-loop virtual users, each sending its next request when the last is answered, "
        "through the same queue and micro-batching the server uses.",
        "",
        "| rung | users | requests/s | p50 ms | p95 ms | p99 ms | first token p50 / p95 ms | errors |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rungs:
        for lv in r.load or []:
            lat = lv.latency_ms
            out.append(
                f"| {_md_cell(r.label)} | {lv.concurrency} | {lv.throughput_per_s:.1f} "
                f"| {lat.p50:.1f} | {lat.p95:.1f} | {lat.p99:.1f} | {_ttft(lv)} "
                f"| {lv.errors} |"
            )
    return out


def _calibration_section(rungs: Sequence[RungResult]) -> list[str]:
    """How each generative rung was asked and corrected, and what that changed."""
    calibrated = [r for r in rungs if r.calibration is not None and r.calibration.method != "none"]
    if not calibrated:
        return []
    out = [
        "",
        "## Calibration",
        "",
        "Generative rungs were asked a sample of training examples first: the words they answer "
        "with (verbalizer) and a correction of their label bias were chosen there, never on the "
        "test set.",
        "",
        "| rung | method | words | training examples | accuracy raw | accuracy calibrated |",
        "|---|---|---|---|---|---|",
    ]
    for r in calibrated:
        cal = r.calibration
        assert cal is not None
        words = ", ".join(f"{lab} → {w}" if lab != w else lab for lab, w in cal.verbalizer.items())
        raw = _est(r.quality_raw.metrics()["accuracy"]) if r.quality_raw is not None else "-"
        out.append(
            f"| {_md_cell(r.label)} | {cal.method} | {_md_cell(words)} | {cal.examples} "
            f"| {raw} | {_est(classify_quality(r).accuracy)} |"
        )
    return out


def render_markdown(results: RunResults, disagreements: Sequence[Disagreement]) -> str:
    task = results.task
    rungs = results.rungs
    title = results.name or "Comparison"
    out = [
        f"# {title}",
        "",
        f"Task: **{task.type}** into {len(task.labels)} labels ({', '.join(task.labels)}); "
        f"{task.n_test} test examples, {task.n_train} training examples, seed {task.seed}.",
        f"Data: `{task.data}`. Made by rung {results.rung_version} at {results.created}.",
        "",
        "Intervals are bootstrap 95% confidence intervals over the test examples. Latency is per "
        "request, one request at a time unless the rung's concurrency says otherwise.",
        "",
        "## Summary",
        "",
        "| rung | accuracy [95% CI] | macro-F1 [95% CI] | invalid | p50 ms | p95 ms | examples/s "
        "| tokens in/out per request | load s | train s | params | size |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rungs:
        q = classify_quality(r)
        lat = r.latency_ms
        tok = r.tokens
        out.append(
            f"| {_md_cell(r.label)} | {_est(q.accuracy)} | {_est(q.macro_f1)} | {q.invalid} "
            f"| {lat.p50:.1f} | {lat.p95:.1f} | {r.throughput_per_s:.1f} "
            f"| {tok.in_per_request:.0f} / {tok.out_per_request:.1f} | {_secs(r.load_s)} "
            f"| {_secs(r.fit_s) if r.fit_s is not None else '-'} | {fmt.params(r.params, '?')} "
            f"| {fmt.bytes_(r.file_size_bytes, '?')} |"
        )
    for b in results.baselines:
        out.append(
            f"| *{_md_cell(b.name)}: {_md_cell(b.rule)}* | {_est(b.accuracy)} | {_est(b.macro_f1)} "
            "| - | - | - | - | - | - | - | - | - |"
        )
    guessing = [r.label for r in rungs if not results.beats_guessing(r)]
    best = max(rungs, key=lambda r: classify_quality(r).accuracy.value)
    tied = [
        r.label
        for r in rungs
        if r is not best
        and classify_quality(r).accuracy.ci95[1] >= classify_quality(best).accuracy.ci95[0]
    ]
    out += ["", f"Most accurate: **{best.label}** ({classify_quality(best).accuracy.value:.3f})."]
    if tied:
        out.append(
            f"Its interval overlaps those of {', '.join(tied)}: on this sample they are not "
            "clearly worse."
        )
    if guessing:
        out.append(
            f"No better than guessing: {', '.join(guessing)} (the low end of the accuracy "
            "interval is at or below a baseline's accuracy)."
        )
    for failed in results.failed:
        out += ["", f"Not measured: {failed.label}: {failed.error}"]
    out += _calibration_section(rungs)
    out += _cost_memory_section(results)
    out += _load_section(rungs)
    out += ["", "## Per class", ""]
    for r in rungs:
        out += [
            f"### {r.label}",
            "",
            "| label | precision | recall | F1 | support |",
            "|---|---|---|---|---|",
        ]
        for lab, c in classify_quality(r).per_class.items():
            out.append(
                f"| {_md_cell(lab)} | {c.precision:.3f} | {c.recall:.3f} | {c.f1:.3f} | {c.support} |"
            )
        conf = classify_quality(r).confusion
        out += ["", "Confusion matrix (rows: gold, columns: predicted):", ""]
        out.append("| gold \\ predicted | " + " | ".join(_md_cell(c) for c in conf.columns) + " |")
        out.append("|---" * (len(conf.columns) + 1) + "|")
        for lab, row in zip(conf.labels, conf.matrix, strict=True):
            out.append(f"| {_md_cell(lab)} | " + " | ".join(str(v) for v in row) + " |")
        out.append("")
    if len(rungs) > 1:
        out += ["## Where the rungs disagree", ""]
        if not disagreements:
            out.append("The rungs gave the same answer on every example.")
        else:
            names = [r.label for r in rungs]
            out.append("| id | text | gold | " + " | ".join(_md_cell(n) for n in names) + " |")
            out.append("|---" * (3 + len(names)) + "|")
            for d in disagreements:
                text = d.text if len(d.text) <= 160 else d.text[:157] + "..."
                cells = [
                    ("**" + str(d.answers[n]) + "**")
                    if d.answers[n] == d.gold
                    else str(d.answers[n])
                    for n in names
                ]
                out.append(
                    f"| {d.id} | {_md_cell(text)} | {_md_cell(d.gold)} | "
                    + " | ".join(_md_cell(c) for c in cells)
                    + " |"
                )
            out += ["", "Right answers are in bold."]
    return "\n".join(out) + "\n"
