"""The advice: the smallest rung that meets the user's constraints, why, and what would change.

``advise(results, constraints, cards)`` is a pure function over a compare run's figures (the
rungs of its ``RunResults``), the user's constraints and the model cards of the rungs. It reads no
file and calls nothing, so the CLI, the server and the HTML report can all render the same
``Advice``.

The rules:

- every constraint is checked on every rung: a pass, a fail with the gap, or unknown when a
  figure is missing (an unknown never counts as a pass);
- the recommended rung is the smallest (parameters; API models, whose size is unknown, last)
  and then the cheapest that passes every check;
- quality floors may be set on any metric the run measured (classify: accuracy, macro_f1; a
  text task: its scorer's, such as rougeL, chrf, f1, field_accuracy, token_f1, judge); a floor on
  a metric the run did not measure is the user's error, raised with the run's metrics;
- without a quality floor, rung does not recommend the smallest rung whatever its quality: it
  recommends the smallest rung whose interval on the run's primary metric (classify: accuracy)
  overlaps the best one's;
- a rung no better than guessing (classify: its accuracy interval reaches down to a baseline's
  accuracy) is never recommended; runs without baselines (text tasks) have no such check;
- where the 95% intervals of the recommended rung and a more accurate one overlap, the advice
  says they are tied and that it prefers the smaller; when a point estimate meets a floor but
  its interval reaches below it, it says so;
- cost per 1,000 requests: API rungs from their tokens per request × the price per token; local
  rungs from their measured throughput × an hourly machine price (the device class's default,
  or the user's). Cost of local rungs is therefore an estimate, and is labelled as one;
- concurrency is only checked when the results carry load figures (a rung's ``load``: the
  levels of its load test, ``rung.runs.LoadLevel``): the rung passes at the smallest measured
  level at or above the asked concurrency when it made no errors there and, with
  ``--max-p95-ms``, its p95 stayed within the limit. Without load figures a note says concurrency cannot be checked;
- when the 95% interval of the choice is wider than 20 points, a caveat says the rungs cannot
  be told apart well;
- when no local rung meets the quality floor, fine-tuning is suggested for the smallest local
  rung whose only failing constraint is that floor (tuning mends quality, not latency or
  memory), with how far it is short.

JSON shape of ``Advice.to_json()`` (``advice_version`` 1; every key always present)::

    {
      "advice_version": 1,
      "constraints": {"min_accuracy": float|null, "min_macro_f1": float|null,
                      "max_p95_ms": float|null, "max_cost_per_1k": float|null,
                      "device": str|null, "on_prem": bool, "concurrency": int|null,
                      "hourly_price": float|null, "context": int,
                      "min_quality": {METRIC: float}},   # floors on any metric, as given
      "metric": str,                              # the metric ties are judged on (accuracy,
                                                  # macro_f1, rougeL, chrf, f1, ...)
      "recommended": {"label": str, "model": str} | null,
      "reasons": [str],                           # why, tied to measured figures
      "caveats": [str],                           # floors met only by the point estimate
      "ties": [str],
      "runners_up": [{"label": str, "model": str, "meets_all": bool,
                      "fails": [CHECK], "unknown": [CHECK], "text": str}],
      "what_would_change": [str],
      "notes": [str],                             # assumptions and what could not be checked
      "rungs": [{"label": str, "model": str, "kind": "decoder"|"encoder"|"api"|null,
                 "on_prem": bool|null, "params": int|null, "n": int,
                 "quality": {METRIC: ESTIMATE},   # every metric measured, scorer's order
                 "accuracy": ESTIMATE|null, "macro_f1": ESTIMATE|null,   # classify's
                 "p95_ms": float, "throughput_per_s": float,
                 "cost_per_1k": float|null, "cost_basis": str,
                 "memory_bytes": int|null, "meets_all": bool, "checks": [CHECK]}]
    }
    ESTIMATE = {"value": float, "ci95": [float, float]}   # fractions (chrF 35.2 is 0.352)
    CHECK = {"constraint": str,           # min_<metric> for a floor, max_p95_ms, device, ...
             "status": "pass"|"fail"|"unknown",
             "measured": float|str|null, "limit": float|str|null,
             "gap": float|null,   # how far past the limit, in its unit (fractions for quality)
             "text": str}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from rung import fmt
from rung.advise.changes import what_would_change
from rung.advise.checks import assess, cost_device
from rung.advise.figures import (
    Assessment,
    Check,
    Constraints,
    Interval,
    LoadPoint,
    RungFigures,
    constraint_words,
    floor_metric,
    measured_metrics,
    metric_of,
    metric_word,
    parse_results,
)
from rung.catalog.cards import ModelCard
from rung.catalog.devices import get_device
from rung.errors import DataError, SpecError
from rung.runs.record import RunResults

__all__ = [
    "ADVICE_VERSION",
    "Advice",
    "Assessment",
    "Check",
    "Constraints",
    "Interval",
    "LoadPoint",
    "RungFigures",
    "advise",
    "parse_results",
]

ADVICE_VERSION = 1


@dataclass
class Advice:
    constraints: Constraints
    metric: str
    recommended: Assessment | None
    reasons: list[str] = field(default_factory=list)
    caveats: list[str] = field(default_factory=list)
    ties: list[str] = field(default_factory=list)
    runners_up: list[tuple[Assessment, str]] = field(default_factory=list)
    what_would_change: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    assessments: list[Assessment] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        def check(c: Check) -> dict[str, Any]:
            return asdict(c)

        def estimate(i: Interval | None) -> dict[str, Any] | None:
            return None if i is None else {"value": i.value, "ci95": [i.low, i.high]}

        return {
            "advice_version": ADVICE_VERSION,
            "constraints": asdict(self.constraints),
            "metric": self.metric,
            "recommended": None
            if self.recommended is None
            else {"label": self.recommended.label, "model": self.recommended.rung.model},
            "reasons": list(self.reasons),
            "caveats": list(self.caveats),
            "ties": list(self.ties),
            "runners_up": [
                {
                    "label": a.label,
                    "model": a.rung.model,
                    "meets_all": a.meets_all,
                    "fails": [check(c) for c in a.fails],
                    "unknown": [check(c) for c in a.unknown],
                    "text": text,
                }
                for a, text in self.runners_up
            ],
            "what_would_change": list(self.what_would_change),
            "notes": list(self.notes),
            "rungs": [
                {
                    "label": a.label,
                    "model": a.rung.model,
                    "kind": a.card.kind if a.card else None,
                    "on_prem": a.card.on_prem if a.card else None,
                    "params": a.size,
                    "n": a.rung.n,
                    "quality": {m: estimate(i) for m, i in a.rung.quality.items()},
                    "accuracy": estimate(a.rung.metric("accuracy")),
                    "macro_f1": estimate(a.rung.metric("macro_f1")),
                    "p95_ms": a.rung.p95_ms,
                    "throughput_per_s": a.rung.throughput_per_s,
                    "cost_per_1k": a.cost_per_1k,
                    "cost_basis": a.cost_basis,
                    "memory_bytes": a.memory_bytes,
                    "meets_all": a.meets_all,
                    "checks": [check(c) for c in a.checks],
                }
                for a in self.assessments
            ],
        }


def _with_tie_check(a: Assessment, best: Assessment, metric: str) -> Assessment:
    mine, top = metric_of(a, metric), metric_of(best, metric)
    if a is best:
        check = Check(
            "tied_with_best", "pass", mine.value, top.value, 0.0,
            f"{metric_word(metric)} {mine.show()} is the best measured",
        )  # fmt: skip
    elif mine.overlaps(top):
        check = Check(
            "tied_with_best", "pass", mine.value, top.value, top.value - mine.value,
            f"{metric_word(metric)} {mine.show()} is not measurably below the best, "
            f"{best.label}'s {top.show()}",
        )  # fmt: skip
    else:
        check = Check(
            "tied_with_best", "fail", mine.value, top.value, top.value - mine.value,
            f"{metric_word(metric)} {mine.value:.3f} is clearly below {best.label}'s {top.show()} "
            f"({fmt.points(top.value - mine.value)}; the 95% intervals do not overlap)",
        )  # fmt: skip
    return Assessment(
        a.rung, a.card, a.cost_per_1k, a.cost_basis, a.memory_bytes, (*a.checks, check)
    )


def _why_not(a: Assessment, rec: Assessment) -> str:
    """Why an eligible rung lost to the recommended one: size, then cost, then latency."""
    if a.size != rec.size:
        return f"is larger ({fmt.params(a.size)} against {fmt.params(rec.size)} parameters)"
    if (
        a.cost_per_1k is not None
        and rec.cost_per_1k is not None
        and a.cost_per_1k > rec.cost_per_1k
    ):
        return (
            f"costs more ({fmt.usd(a.cost_per_1k)} against {fmt.usd(rec.cost_per_1k)} per 1,000 "
            "requests)"
        )
    return f"is slower (p95 {fmt.ms(a.rung.p95_ms)} against {fmt.ms(rec.rung.p95_ms)})"


def _no_rung_reasons(assessed: list[Assessment]) -> list[str]:
    reasons = ["No rung meets every constraint."]
    names = sorted({ch.constraint for a in assessed for ch in a.fails + a.unknown})
    for name in names:
        failing = [a for a in assessed if any(ch.constraint == name for ch in a.fails)]
        if len(failing) == len(assessed):
            closest = min(
                failing,
                key=lambda a: next(
                    (ch.gap for ch in a.fails if ch.constraint == name and ch.gap is not None),
                    float("inf"),
                ),
            )
            ch = next(ch for ch in closest.fails if ch.constraint == name)
            reasons.append(
                f"No rung passes {constraint_words(name)}; the closest is {closest.label}: "
                f"{ch.text}."
            )
    return reasons


def _reasons(
    rec: Assessment, candidates: list[Assessment], n: int, c: Constraints, metric: str
) -> list[str]:
    size = (
        "behind an API" if rec.is_api
        else f"{fmt.params(rec.size)} parameters" if rec.size
        else "size unknown"
    )  # fmt: skip
    if c.has_floor or n == 1:
        which = "only" if len(candidates) == 1 else "smallest"
        lead = f"{rec.label} ({size}) is the {which} rung that meets every constraint."
    else:
        hint = "--min-accuracy" if metric == "accuracy" else f"--min-quality {metric}=VALUE"
        lead = (
            f"{rec.label} ({size}) is the smallest rung whose {metric_word(metric)} is not "
            f"measurably below the best (no quality floor was set; add {hint} to set one)."
        )
    reasons = [lead]
    for ch in rec.checks:
        subject = "It" if ch.text.startswith(("runs", "needs", "sends")) else "Its"
        reasons.append(f"{subject} {ch.text}.")
    if c.max_cost_per_1k is None and rec.cost_per_1k is not None:
        reasons.append(
            f"It costs about {fmt.usd(rec.cost_per_1k)} per 1,000 requests ({rec.cost_basis})."
        )
    if c.max_p95_ms is None:
        reasons.append(f"Its p95 latency was {fmt.ms(rec.rung.p95_ms)}.")
    return reasons


#: a 95% interval wider than this (a fraction, as every metric is here) is too wide to lean on
WIDE_INTERVAL = 0.20


def _caveats(rec: Assessment, metric: str) -> list[str]:
    """Floors the point estimate meets while the interval reaches below them, and intervals
    too wide to choose by."""
    out = []
    est = metric_of(rec, metric)
    if est.high - est.low > WIDE_INTERVAL:
        out.append(
            f"The 95% interval of {rec.label}'s {metric_word(metric)} is wide "
            f"({est.low:.2f}–{est.high:.2f}, {rec.rung.n} test examples): the rungs cannot be "
            "told apart well. Measure more examples before relying on this choice."
        )
    for ch in rec.checks:
        floored = floor_metric(ch.constraint)
        if floored is None or ch.status != "pass":
            continue
        word, floor = metric_word(floored), float(ch.limit or 0)
        floored_est = rec.rung.metric(floored)
        if floored_est is not None and floored_est.low < floor:
            out.append(
                f"{rec.label}'s {word} {floored_est.value:.3f} meets the {floor:.2f} floor, but "
                f"its 95% interval reaches down to {floored_est.low:.3f}: with {rec.rung.n} test examples the run "
                "cannot rule out that it falls short. Measure more examples to be sure."
            )
    return out


def _ties(rec: Assessment, assessed: list[Assessment], metric: str) -> list[str]:
    """Better rungs whose interval overlaps the choice's: tied, and the smaller wins."""
    mine = metric_of(rec, metric)
    out = []
    for a in assessed:
        theirs = metric_of(a, metric)
        if a is rec or theirs.value <= mine.value or not theirs.overlaps(mine):
            continue
        if a.order() < rec.order():
            continue  # a smaller rung that fails a constraint: the runners-up say which
        out.append(
            f"{rec.label} and {a.label} are statistically tied on {metric_word(metric)}: "
            f"{rec.label} {mine.show()}, {a.label} {theirs.show()}; the 95% intervals "
            f"overlap, so rung prefers the smaller, {rec.label}."
        )
    return out


def _runners_up(assessed: list[Assessment], rec: Assessment | None) -> list[tuple[Assessment, str]]:
    others = [a for a in assessed if a is not rec]
    others.sort(key=lambda a: (not a.meets_all, len(a.fails) + len(a.unknown), a.order()))
    out = []
    for a in others:
        if a.meets_all and rec is not None:
            text = f"meets every constraint, but {_why_not(a, rec)}"
        else:
            text = "; ".join([ch.text for ch in a.fails] + [ch.text for ch in a.unknown])
        out.append((a, text))
    return out


def _notes(assessed: list[Assessment], c: Constraints, any_load: bool) -> list[str]:
    notes = []
    if c.concurrency is not None and not any_load:
        notes.append(
            f"Concurrency ({c.concurrency} users) cannot be checked: this run has no load "
            "figures (latency under concurrent users); it measured one request at a time."
        )
    if any(not a.is_api and a.cost_basis.startswith("as `rung compare`") for a in assessed):
        notes.append(
            "Cost of local rungs is machine time: the best throughput measured on the machine "
            "that ran the comparison, priced with the spec's machine profile (cost.machine or "
            "cost.hourly_usd); --hourly-price or --device re-prices it, and a different machine "
            "changes it."
        )
    elif any(not a.is_api for a in assessed):
        dev = cost_device(c)
        mine = c.hourly_price is not None
        hourly = c.hourly_price if mine else dev.hourly_usd
        whose = "your --hourly-price" if mine else f"the {dev.name} class default"
        notes.append(
            "Cost of local rungs is machine time: the throughput measured on the machine that "
            f"ran the comparison, priced at ${hourly:g}/h ({whose}); a different machine "
            "changes it."
        )
    if c.device is not None:
        notes.append(
            f"Memory is estimated from each model's metadata at a {c.context:,}-token context "
            "(weights + KV cache + overhead), not measured."
        )
    notes.extend(
        f"{a.label} has no model card: its memory, price and premises are unknown."
        for a in assessed
        if a.card is None
    )
    return notes


def _tie_metric(rungs: Sequence[RungFigures], c: Constraints) -> str:
    """The metric ties are judged on: the run's primary (classify: accuracy), unless the floors
    name other metrics only, then the first of those (classify: macro-F1 when it alone has a
    floor). Floors on a metric the run did not measure are refused here, with the run's own."""
    measured = measured_metrics(list(rungs))
    floors = c.floors()
    unmeasured = [m for m in floors if m not in measured]
    if unmeasured:
        names = ", ".join(repr(m) for m in unmeasured)
        raise SpecError(
            f"this run did not measure {names}, so it cannot have a floor; its metrics are "
            f"{', '.join(measured)} ({rungs[0].primary} ranks them): name one of those"
        )
    common = [m for m in measured if all(m in r.quality for r in rungs)]
    if not common:
        raise DataError("the rungs of this run share no quality metric; nothing to compare")
    primary = rungs[0].primary
    chosen = primary if not floors or primary in floors else next(iter(floors))
    return chosen if chosen in common else common[0]


def advise(
    results: RunResults | Sequence[RungFigures],
    constraints: Constraints,
    cards: Mapping[str, ModelCard],
) -> Advice:
    """The advice for the rungs of a compare run. ``cards`` maps a rung's label (or, failing
    that, its model id) to its model card; a rung without a card has unknown memory, price and
    premises, which the advice says."""
    rungs = parse_results(results) if isinstance(results, RunResults) else list(results)
    c = constraints
    if c.device is not None:
        get_device(c.device)  # an unknown device is the user's error, raised before anything
    metric = _tie_metric(rungs, c)
    any_load = any(r.load for r in rungs)
    assessed = [assess(r, cards.get(r.label) or cards.get(r.model), c, any_load) for r in rungs]

    if not c.has_floor:
        # Without a floor, "meets every constraint" also means "not measurably below the best".
        eligible = [a for a in assessed if a.meets_all]
        if eligible:
            best = max(eligible, key=lambda a: metric_of(a, metric).value)
            assessed = [_with_tie_check(a, best, metric) if a.meets_all else a for a in assessed]

    candidates = sorted((a for a in assessed if a.meets_all), key=Assessment.order)
    rec = candidates[0] if candidates else None
    advice = Advice(constraints=c, metric=metric, recommended=rec, assessments=assessed)
    if rec is None:
        advice.reasons = _no_rung_reasons(assessed)
    else:
        advice.reasons = _reasons(rec, candidates, len(assessed), c, metric)
        advice.caveats = _caveats(rec, metric)
        advice.ties = _ties(rec, assessed, metric)
    advice.runners_up = _runners_up(assessed, rec)
    advice.what_would_change = what_would_change(assessed, rec, c, metric)
    advice.notes = _notes(assessed, c, any_load)
    return advice
