"""report.html: the comparison as one self-contained page, from the run record and the predictions.

The page carries its own copy of plotly.js (inlined once), so it opens offline and from an
e-mail attachment; it loads no font, image or script from anywhere. Figures a run did not
measure (load, memory, cost) are left out with a line that says so. Every string from the user
or the data is escaped.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import plotly.io as pio  # type: ignore[import-untyped]
import plotly.offline  # type: ignore[import-untyped]

from rung import fmt
from rung.report import plots
from rung.report.markdown import find_disagreements
from rung.runs.record import Metric, PredictionRow, RungResult, RunResults, classify_quality

__all__ = ["MAX_DISAGREEMENTS", "render_html", "write_html"]

#: rows of the disagreement table; past this the page grows slow to filter and scroll
MAX_DISAGREEMENTS = 500

PLOT_CONFIG = {"displaylogo": False, "responsive": True, "showSendToCloud": False}


class Markup(str):
    """HTML that is already safe to insert."""


def _e(value: object) -> str:
    return value if isinstance(value, Markup) else html.escape(str(value))


def _fig(fig: Any, div_id: str) -> Markup:
    return Markup(
        '<div class="plot">'
        + pio.to_html(
            fig, include_plotlyjs=False, full_html=False, div_id=div_id, config=PLOT_CONFIG
        )
        + "</div>"
    )


def _table(headers: Sequence[str], rows: Iterable[Sequence[object]], cls: str = "") -> Markup:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    attr = f' class="{cls}"' if cls else ""
    return Markup(f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def _note(text: str) -> Markup:
    return Markup(f'<p class="note">{_e(text)}</p>')


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) else None


def _f(x: Any, fmt: str = ".1f", unit: str = "") -> str:
    v = _num(x)
    return "–" if v is None else f"{v:{fmt}}{unit}"


def _mb(x: Any) -> str:
    v = _num(x)
    return "–" if v is None else fmt.bytes_(int(v * plots.MB))


def _usd(x: float | None) -> str:
    return "–" if x is None else fmt.usd(x)


def _est(q: Metric) -> Markup:
    low, high = q.ci95
    return Markup(f'{q.value:.3f}<br><span class="ci">[{low:.3f}, {high:.3f}]</span>')


def _section(anchor: str, title: str, *parts: str) -> str:
    return f'<section id="{anchor}"><h2>{_e(title)}</h2>{"".join(parts)}</section>'


def _header(results: RunResults) -> str:
    task = results.task
    labels = list(task.labels)
    title = results.name or "Comparison"
    into = f" into {len(labels)} labels ({_e(', '.join(labels))})" if labels else ""
    return (
        f"<header><h1>{_e(title)}</h1><p>Task: <b>{_e(task.type)}</b>{into}; {_e(task.n_test)} test "
        f"examples, {_e(task.n_train)} training examples, seed "
        f'{_e(task.seed)}.</p><p class="note">Data: <code>{_e(task.data)}'
        f"</code>. Made by rung {_e(results.rung_version)} at "
        f"{_e(results.created)}. Intervals are bootstrap 95% confidence intervals "
        "over the test examples.</p></header>"
    )


def _text_summary(results: RunResults) -> str:
    """The summary of a text task's run: each metric of the task with its interval."""
    names: list[str] = []
    for r in results.rungs:
        for name in [r.quality.primary_metric(), *r.quality.metrics()]:
            if name not in names:
                names.append(name)
    headers = [
        "rung", *(f"{n} [95% CI]" for n in names), "p50 ms", "p95 ms", "requests/s",
        "tokens in / out", "$ / 1k req", "peak RSS", "est. memory", "params", "size",
    ]  # fmt: skip
    rows = []
    for r in results.rungs:
        found, lat, tok, mem = r.quality.metrics(), r.latency_ms, r.tokens, r.memory_mb
        rows.append(
            [
                r.label,
                *(_est(found[n]) if n in found else "-" for n in names),
                _f(lat.p50),
                _f(lat.p95),
                _f(r.throughput_per_s, ".2f"),
                f"{_f(tok.in_per_request, '.0f')} / {_f(tok.out_per_request)}",
                _usd(r.cost_usd_per_1k),
                _mb(mem.peak_rss),
                _mb(mem.estimate),
                fmt.params(r.params, "?"),
                fmt.bytes_(r.file_size_bytes, "?"),
            ]
        )
    primary = results.rungs[0].quality.primary_metric()
    best = max(results.rungs, key=lambda r: r.quality.metrics()[primary].value)
    verdict = f"Best {primary}: {best.label} ({best.quality.metrics()[primary].value:.3f})."
    return _section(
        "summary",
        "Summary",
        Markup('<div class="wide">'),
        _table(headers, rows, "figures"),
        Markup("</div>"),
        Markup(f"<p>{_e(verdict)}</p>"),
        *(Markup(f'<p class="failed">Not measured: {_e(f.error)}</p>') for f in results.failed),
    )


def _summary(results: RunResults) -> str:
    if results.task.type != "classify":
        return _text_summary(results)
    rungs, failed = results.rungs, results.failed
    headers = [
        "rung", "accuracy [95% CI]", "macro-F1 [95% CI]", "invalid", "p50 ms", "p95 ms",
        "p99 ms", "examples/s", "tokens in / out", "$ / 1k req", "peak RSS", "est. memory",
        "load / train s", "params", "size",
    ]  # fmt: skip
    rows = []
    for r in rungs:
        q, lat, tok, mem = classify_quality(r), r.latency_ms, r.tokens, r.memory_mb
        rows.append(
            [
                r.label,
                _est(q.accuracy),
                _est(q.macro_f1),
                q.invalid,
                _f(lat.p50),
                _f(lat.p95),
                _f(lat.p99),
                _f(r.throughput_per_s),
                f"{_f(tok.in_per_request, '.0f')} / {_f(tok.out_per_request)}",
                _usd(r.cost_usd_per_1k),
                _mb(mem.peak_rss),
                _mb(mem.estimate),
                f"{_f(r.load_s)} / {_f(r.fit_s)}",
                fmt.params(r.params, "?"),
                fmt.bytes_(r.file_size_bytes, "?"),
            ]
        )
    for b in results.baselines:
        rows.append(
            [Markup(f"<em>{_e(b.name)}: {_e(b.rule)}</em>"), _est(b.accuracy), _est(b.macro_f1)]
            + ["-"] * (len(headers) - 3)
        )
    guessing = [r.label for r in rungs if not results.beats_guessing(r)]
    best = max(rungs, key=lambda r: classify_quality(r).accuracy.value)
    acc = classify_quality(best).accuracy
    tied = [
        r.label
        for r in rungs
        if r is not best and classify_quality(r).accuracy.ci95[1] >= acc.ci95[0]
    ]
    verdict = f"Most accurate: {best.label} ({acc.value:.3f})."
    if tied:
        verdict += (
            f" Its interval overlaps those of {', '.join(tied)}: on this sample they are not "
            "clearly worse."
        )
    return _section(
        "summary",
        "Summary",
        Markup('<div class="wide">'),
        _table(headers, rows, "figures"),
        Markup("</div>"),
        Markup(f"<p>{_e(verdict)}</p>"),
        *(
            [
                Markup(
                    f'<p class="failed">No better than guessing: {_e(", ".join(guessing))} '
                    "(the low end of the accuracy interval is at or below a baseline's).</p>"
                )
            ]
            if guessing
            else []
        ),
        _calibration(rungs),
        *(Markup(f'<p class="failed">Not measured: {_e(f.error)}</p>') for f in failed),
    )


def _calibration(rungs: Sequence[RungResult]) -> Markup:
    """How each generative rung was asked and corrected, chosen on training examples."""
    rows = []
    for r in rungs:
        cal = r.calibration
        if cal is None or cal.method == "none":
            continue
        words = ", ".join(f"{lab} → {w}" if lab != w else lab for lab, w in cal.verbalizer.items())
        raw = _est(r.quality_raw.metrics()["accuracy"]) if r.quality_raw is not None else "-"
        rows.append(
            [r.label, cal.method, words, cal.examples, raw, _est(classify_quality(r).accuracy)]
        )
    if not rows:
        return Markup("")
    headers = ["rung", "calibration", "words", "training examples", "accuracy raw", "calibrated"]
    return Markup(
        _note(
            "Generative rungs were first asked training examples: the words they answer with "
            "and a correction of their label bias were chosen there, never on the test set."
        )
        + _table(headers, rows, "figures")
    )


def _pareto(rungs: Sequence[RungResult]) -> str:
    parts: list[str] = [
        _note(
            "Up and to the left is better. Filled markers joined by the dashed line are the "
            "Pareto frontier: no other rung is both at least as accurate and cheaper (or "
            "faster, or smaller). Bars are 95% intervals."
        ),
        Markup('<div class="grid">'),
    ]
    notes = []
    for axis in plots.pareto_axes(rungs):
        missing = [r.label for r in rungs if axis.value(r) is None]
        if len(missing) == len(rungs):
            notes.append(f"{axis.title}: not drawn, no rung has a figure for {axis.label}.")
            continue
        parts.append(_fig(plots.pareto_figure(rungs, axis), f"plot-pareto-{axis.key}"))
        if missing:
            notes.append(f"{axis.title}: {', '.join(missing)} not shown (no figure).")
    parts.append(Markup("</div>"))
    parts.extend(_note(n) for n in notes)
    return _section("pareto", "Quality against cost, latency and memory", *parts)


def _load(rungs: Sequence[RungResult]) -> str:
    fig = plots.load_figure(rungs)
    if fig is None:
        return _section(
            "load",
            "Under load",
            _note("This run has no load test (the spec's measure.load was off)."),
        )
    rows = []
    for r in rungs:
        for lv in plots.load_levels(r):
            lat = lv.latency_ms
            rows.append(
                [
                    r.label,
                    lv.concurrency,
                    lv.requests,
                    lv.errors,
                    _f(lv.wall_s),
                    _f(lv.throughput_per_s),
                    _f(lv.output_tokens_per_s),
                    _f(lat.p50),
                    _f(lat.p95),
                    _f(lat.p99),
                    lv.first_error or "",
                ]
            )
    headers = [
        "rung", "users", "requests", "errors", "wall s", "requests/s", "output tokens/s",
        "p50 ms", "p95 ms", "p99 ms", "first error",
    ]  # fmt: skip
    return _section(
        "load",
        "Under load",
        _note(
            "Closed-loop virtual users, each sending its next request when the last is "
            "answered. A cross marks a level where requests failed."
        ),
        _fig(fig, "plot-load"),
        _table(headers, rows, "figures prose-last"),
    )


def _cost(results: RunResults) -> str:
    rows: list[list[object]] = [
        [
            c.label or c.model,
            "in this run" if c.in_ladder else "not run: priced",
            _usd(c.usd_per_1k),
            c.basis,
        ]
        for c in results.counterfactual
    ]
    if not rows:
        rows = [
            [r.label, "in this run", _usd(r.cost_usd_per_1k), r.cost.detail] for r in results.rungs
        ]
    if not rows:
        return _section("cost", "Cost", _note("This run has no cost figures."))
    return _section(
        "cost",
        "Cost per 1,000 requests",
        _note(
            "API rungs: tokens per request × the price per token. Local rungs: machine time at "
            "the measured throughput × the machine's hourly price, an estimate that depends on "
            "the machine. Models not run are priced with the token counts a rung of this run "
            "measured."
        ),
        _table(["model", "", "$ / 1k requests", "how"], rows, "figures prose-last"),
    )


def _memory(rungs: Sequence[RungResult]) -> str:
    rows = []
    for r in rungs:
        m = r.memory_mb
        figures = (m.peak_rss, m.baseline_rss, m.model_rss, m.peak_gpu, m.estimate, m.file)
        if any(_num(v) is not None for v in figures):
            rows.append([r.label, *(_mb(v) for v in figures), m.estimate_basis])
    if not rows:
        return ""
    headers = [
        "rung", "peak RSS", "baseline RSS", "model RSS", "peak GPU", "estimate", "file",
        "estimate basis",
    ]  # fmt: skip
    return _section(
        "memory",
        "Memory",
        _note(
            "Measured in a fresh process per rung (RSS: resident memory; baseline: the process "
            "before the model loaded), beside the estimate from the model's own metadata."
        ),
        _table(headers, rows, "figures prose-last"),
    )


def _confusion(rungs: Sequence[RungResult]) -> str:
    parts: list[str] = [_note("Rows: gold label; columns: predicted label."), '<div class="grid">']
    for i, r in enumerate(rungs):
        table = _table(
            ["label", "precision", "recall", "F1", "support"],
            (
                [lab, f"{c.precision:.3f}", f"{c.recall:.3f}", f"{c.f1:.3f}", c.support]
                for lab, c in classify_quality(r).per_class.items()
            ),
            "figures small",
        )
        parts.append(
            f'<div class="card">{_fig(plots.confusion_figure(r, i), f"plot-confusion-{i}")}'
            f"{table}</div>"
        )
    parts.append("</div>")
    return _section("confusion", "Confusion matrices", *parts)


FILTER_JS = """
(function () {
  var gold = document.getElementById("filter-gold");
  var rung = document.getElementById("filter-rung");
  var count = document.getElementById("filter-count");
  var rows = Array.prototype.slice.call(document.querySelectorAll("#disagreements tbody tr"));
  function apply() {
    var want = rung.value.split(":");
    var shown = 0;
    rows.forEach(function (row) {
      var ok = (!gold.value || row.getAttribute("data-gold") === gold.value) &&
        (!rung.value || row.getAttribute("data-" + want[0]).split(" ").indexOf(want[1]) >= 0);
      row.hidden = !ok;
      if (ok) { shown += 1; }
    });
    count.textContent = shown + " of " + rows.length + " shown";
  }
  gold.addEventListener("change", apply);
  rung.addEventListener("change", apply);
  apply();
})();
"""


# A plot drawn while the page was still being parsed took the width its box had then; once
# every box is laid out, each plot is fitted to its own.
RESIZE_JS = """
window.addEventListener("load", function () {
  document.querySelectorAll(".js-plotly-plot").forEach(function (div) {
    Plotly.Plots.resize(div);
  });
});
"""


def _answered_by_all(
    names: Sequence[str], predictions: Sequence[PredictionRow]
) -> tuple[dict[str, dict[str, PredictionRow]], list[str]]:
    """Each rung's rows by item id, and the ids every rung answered, in the first rung's
    order."""
    by_rung: dict[str, dict[str, PredictionRow]] = {n: {} for n in names}
    for p in predictions:
        if p.rung in by_rung:
            by_rung[p.rung][p.id] = p
    return by_rung, [i for i in by_rung[names[0]] if all(i in by_rung[n] for n in names)]


def _aligned(
    names: Sequence[str], predictions: Sequence[PredictionRow]
) -> list[list[tuple[str, str, str, str | None]]]:
    """Per rung, (id, text, gold, predicted) for the examples every rung answered, in the
    first rung's order."""
    by_rung, ids = _answered_by_all(names, predictions)
    return [
        [(i, row.text, row.gold, row.predicted) for i in ids for row in [by_rung[n][i]]]
        for n in names
    ]


def _disagreements(rungs: Sequence[RungResult], predictions: Sequence[PredictionRow]) -> str:
    if len(rungs) < 2:
        return ""
    names = [r.label for r in rungs]
    if not predictions:
        return _section("disagree", "Where the rungs disagree", _note("No predictions given."))
    records = _aligned(names, predictions)
    if not records[0]:
        return _section(
            "disagree",
            "Where the rungs disagree",
            _note("The predictions given name none of these rungs; nothing to compare."),
        )
    found = find_disagreements(names, records, limit=len(records[0]))
    if not found:
        return _section(
            "disagree",
            "Where the rungs disagree",
            _note("The rungs gave the same answer on every example."),
        )
    confidence = {(p.rung, p.id): p.confidence for p in predictions}
    head = "".join(f"<th>{_e(n)}</th>" for n in names)
    body = []
    for d in found[:MAX_DISAGREEMENTS]:
        wrong = [str(k) for k, n in enumerate(names) if d.answers[n] != d.gold]
        right = [str(k) for k, n in enumerate(names) if d.answers[n] == d.gold]
        cells = []
        for n in names:
            answer, ok = d.answers[n], d.answers[n] == d.gold
            conf = _num(confidence.get((n, d.id)))
            title = f' title="confidence {conf:.2f}"' if conf is not None else ""
            shown = "(invalid)" if answer is None else answer
            cells.append(
                f'<td class="{"right" if ok else "wrong"}"{title}>'
                f"{'✓' if ok else '✗'} {_e(shown)}</td>"
            )
        body.append(
            f'<tr data-gold="{_e(d.gold)}" data-wrong="{" ".join(wrong)}" '
            f'data-right="{" ".join(right)}"><td>{_e(d.id)}</td><td class="text">{_e(d.text)}'
            f"</td><td>{_e(d.gold)}</td>{''.join(cells)}</tr>"
        )
    golds = sorted({d.gold for d in found[:MAX_DISAGREEMENTS]})
    gold_opts = "".join(f'<option value="{_e(g)}">{_e(g)}</option>' for g in golds)
    rung_opts = "".join(
        f'<option value="wrong:{k}">{_e(n)} wrong</option>'
        f'<option value="right:{k}">{_e(n)} right</option>'
        for k, n in enumerate(names)
    )
    more = (
        f" The first {MAX_DISAGREEMENTS} of {len(found)} are listed."
        if len(found) > MAX_DISAGREEMENTS
        else ""
    )
    return _section(
        "disagree",
        "Where the rungs disagree",
        _note(
            f"{len(found)} of {len(records[0])} test examples got different answers. Those where "
            f"some rung is right and another wrong come first.{more} Hover an answer for the "
            "rung's confidence."
        ),
        f'<div class="filters"><label>gold label <select id="filter-gold"><option value="">'
        f'any</option>{gold_opts}</select></label> <label>rung <select id="filter-rung">'
        f'<option value="">any</option>{rung_opts}</select></label> '
        '<span id="filter-count"></span></div>',
        f'<table id="disagreements" class="examples"><thead><tr><th>id</th><th>text</th>'
        f"<th>gold</th>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>",
        f"<script>{FILTER_JS}</script>",
    )


#: examples a text task's page lists: enough to read, few enough to keep the page light
MAX_TEXT_EXAMPLES = 50


def _text_examples(rungs: Sequence[RungResult], predictions: Sequence[PredictionRow]) -> str:
    """A text task's answers side by side, scored per item on the primary metric: with several
    rungs, the items where their scores differ most first; with one, its lowest-scored first."""
    if not rungs:
        return ""
    title = "Examples"
    metric = rungs[0].quality.primary_metric()
    names = [r.label for r in rungs]
    by_rung, ids = _answered_by_all(names, predictions)
    if not ids:
        return _section("examples", title, _note("No predictions of these rungs were given."))

    def score(name: str, item: str) -> float | None:
        return _num((by_rung[name][item].item_metrics or {}).get(metric))

    def order(item: str) -> tuple[float, float]:
        values = [v for v in (score(n, item) for n in names) if v is not None]
        if not values:
            return (0.0, 0.0)
        return (-(max(values) - min(values)), sum(values) / len(values))

    shown = sorted(ids, key=order)[:MAX_TEXT_EXAMPLES]
    rows = []
    for item in shown:
        first = by_rung[names[0]][item]
        cells = []
        for n in names:
            row, value = by_rung[n][item], score(n, item)
            answer = row.generated if row.generated is not None else row.predicted
            label = f"{metric} {value:.2f}" if value is not None else "not scored"
            cells.append(
                f'<td><span class="score">{_e(label)}</span><br>'
                f"{_e('(no answer)' if answer is None else answer)}</td>"
            )
        rows.append(
            f'<tr><td>{_e(item)}</td><td class="text">{_e(first.text)}</td>'
            f'<td class="text">{_e(first.gold)}</td>{"".join(cells)}</tr>'
        )
    how = (
        "the items where the rungs' scores differ most come first"
        if len(names) > 1
        else "the lowest-scored items come first"
    )
    head = "".join(f"<th>{_e(n)}</th>" for n in names)
    return _section(
        "examples",
        title,
        _note(
            f"{len(shown)} of {len(ids)} test items, each answer with its {metric} on that item; "
            f"{how}."
        ),
        f'<table id="text-examples" class="examples"><thead><tr><th>id</th><th>input</th>'
        f"<th>reference</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>",
    )


def _lines(title: str, lines: Sequence[object]) -> str:
    if not lines:
        return ""
    items = "".join(f"<li>{_e(line)}</li>" for line in lines)
    return f"<h3>{_e(title)}</h3><ul>{items}</ul>"


def _advice(advice: Mapping[str, Any] | None) -> str:
    if not advice:
        return ""
    rec = advice.get("recommended")
    constraints = dict(advice.get("constraints") or {})
    # Floors on any metric (rougeL, chrf, ...) read like classify's: "min rougeL 0.35".
    floors = constraints.pop("min_quality", None) or {}
    given = {k: v for k, v in constraints.items() if v not in (None, False)}
    given.pop("context", None)  # always set; it matters only with a device
    given.update({f"min_{metric}": v for metric, v in floors.items()})
    asked = (
        "Constraints: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in given.items()) + "."
        if given
        else "No constraints were given: this is the default advice. Run rung advise on the run "
        "folder with a quality floor, a latency or cost limit or a device to ask for yours."
    )
    reasons = advice.get("reasons") or []
    if rec:
        head = f'<p class="verdict">Recommended: <b>{_e(rec.get("label"))}</b></p>'
    else:
        head = '<p class="verdict fail">No rung meets every constraint.</p>'
        reasons = reasons[1:]
    runners = [f"{r.get('label')}: {r.get('text')}" for r in advice.get("runners_up") or []]
    return _section(
        "advice",
        "Advice",
        head,
        _note(asked),
        _lines("Why", reasons),
        _lines("Tied", advice.get("ties") or []),
        _lines("Caveats", advice.get("caveats") or []),
        _lines("Runners-up", runners),
        _lines("What would change the choice", advice.get("what_would_change") or []),
        _lines("Notes", advice.get("notes") or []),
    )


CSS = """
:root { color-scheme: light; --muted: #5f6368; --line: #dadce0; --ok: #137333; --bad: #b3261e; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0;
  color: #202124; background: #fff; }
main { max-width: 1240px; margin: 0 auto; padding: 12px 20px 40px; }
h1 { font-size: 24px; margin: 12px 0 4px; } h2 { font-size: 19px; margin: 28px 0 8px;
  border-bottom: 1px solid var(--line); padding-bottom: 4px; } h3 { font-size: 15px; margin: 12px 0 4px; }
nav { font-size: 13px; } nav a { margin-right: 12px; color: #1a73e8; text-decoration: none; }
.note { color: var(--muted); font-size: 13px; margin: 4px 0; }
.ci { color: var(--muted); font-size: 12px; }
.wide { overflow-x: auto; }
table { border-collapse: collapse; margin: 8px 0; font-size: 13px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f8f9fa; font-weight: 600; }
table.figures td { white-space: nowrap; font-variant-numeric: tabular-nums; }
table.figures th, table.figures td { padding: 4px 6px; }
table.small { font-size: 12px; }
table.prose-last td:last-child { white-space: normal; min-width: 260px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(540px, 1fr)); gap: 16px; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 8px; }
.plot { min-width: 0; }
.examples td.text { max-width: 560px; }
td.right { color: var(--ok); font-weight: 600; } td.wrong { color: var(--bad); }
.filters { margin: 8px 0; } .filters select { margin: 0 10px 0 4px; }
.verdict { font-size: 16px; } .verdict.fail { color: var(--bad); font-weight: 600; }
footer { color: var(--muted); font-size: 12px; margin-top: 32px; }
"""


def render_html(
    results: RunResults,
    predictions: Sequence[PredictionRow],
    advice: Mapping[str, Any] | None = None,
) -> str:
    """The report page for ``results`` (results.json), ``predictions`` (the rows of
    predictions.jsonl) and, when given, ``advice`` (``Advice.to_json()``)."""
    rungs = results.rungs
    classify = results.task.type == "classify"
    sections = [
        _summary(results),
        _advice(advice),
        _pareto(rungs),
        _load(rungs),
        _cost(results),
        _memory(rungs),
        _confusion(rungs) if classify else "",
        _disagreements(rungs, predictions) if classify else _text_examples(rungs, predictions),
    ]
    body = "".join(sections)
    titles = [
        ("summary", "Summary"), ("advice", "Advice"), ("pareto", "Trade-offs"),
        ("load", "Under load"), ("cost", "Cost"), ("memory", "Memory"),
        ("confusion", "Confusion"), ("disagree", "Disagreements"), ("examples", "Examples"),
    ]  # fmt: skip
    nav = "".join(f'<a href="#{a}">{t}</a>' for a, t in titles if f'id="{a}"' in body)
    title = _e(results.name or "Comparison")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title} — rung report</title><style>{CSS}</style>"
        f"<script>{plotly.offline.get_plotlyjs()}</script></head><body><main>"
        f"{_header(results)}<nav>{nav}</nav>{body}<script>{RESIZE_JS}</script>"
        f"<footer>Made by rung {_e(results.rung_version)}. This page is "
        "self-contained: it opens offline.</footer></main></body></html>\n"
    )


def write_html(
    path: Path,
    results: RunResults,
    predictions: Sequence[PredictionRow],
    advice: Mapping[str, Any] | None = None,
) -> Path:
    path.write_text(render_html(results, predictions, advice), encoding="utf-8")
    return path
