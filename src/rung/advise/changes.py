"""What would change the choice: the one concession that would make another rung the answer
(a lower floor, a slower latency, a bigger budget, data leaving the premises, a quantized build or
a larger device), fine-tuning when nothing on premises meets the floor, and the rungs that are
clearly better than the choice on the metric it was judged on."""

from __future__ import annotations

from collections.abc import Sequence

from rung import fmt
from rung.advise.figures import (
    Assessment,
    Check,
    Constraints,
    constraint_words,
    floor_metric,
    is_quality,
    metric_of,
    metric_word,
)
from rung.catalog.devices import DEVICES, get_device
from rung.catalog.memory import fit, quantization_options

__all__ = ["what_would_change"]


def _saving(a: Assessment, than: Assessment | None) -> str:
    if than is None or a.cost_per_1k is None or than.cost_per_1k is None:
        return ""
    if than.cost_per_1k <= 0 or a.cost_per_1k >= than.cost_per_1k:
        return ""
    share = 1 - a.cost_per_1k / than.cost_per_1k
    return (
        f", saving {fmt.pct(share)} of the cost per 1,000 requests "
        f"({fmt.usd(than.cost_per_1k)} → {fmt.usd(a.cost_per_1k)})"
    )


def _only_fails(a: Assessment, names: Sequence[str]) -> bool:
    return bool(a.fails) and not a.unknown and all(c.constraint in names for c in a.fails)


def _only_quality_fails(a: Assessment, floors_only: bool = False) -> bool:
    """Whether every check a rung fails is about quality (floors only, when asked)."""
    wanted = (lambda n: floor_metric(n) is not None) if floors_only else is_quality
    return bool(a.fails) and not a.unknown and all(wanted(c.constraint) for c in a.fails)


def _concession(ch: Check, tie_word: str) -> str:
    """What lowering the bar a quality check sets would take: "2.0 points less accuracy (a
    floor of 0.880)"."""
    floored = floor_metric(ch.constraint)
    word = (
        metric_word(floored) if floored is not None
        else "accuracy" if ch.constraint == "beats_guessing"
        else tie_word
    )  # fmt: skip
    measured = f" (a floor of {ch.measured:.3f})" if isinstance(ch.measured, float) else ""
    return f"{fmt.points(ch.gap or 0)} less {word}{measured}"


def _higher(metric: str) -> str:
    """How a sentence says a rung is clearly better on the metric: classify's read as accuracy."""
    return "more accurate" if metric in ("accuracy", "macro_f1") else "better"


def what_would_change(
    assessed: list[Assessment], rec: Assessment | None, c: Constraints, metric: str
) -> list[str]:
    out: list[str] = []
    word = metric_word(metric)
    smaller = [a for a in assessed if a is not rec and (rec is None or a.order() < rec.order())]

    quality = sorted(
        (a for a in smaller if _only_quality_fails(a)),
        key=lambda a: max(ch.gap or 0 for ch in a.fails),
    )
    kept: list[Assessment] = []
    for a in quality:
        # A larger rung that needs a bigger concession than one already named adds nothing.
        if any(k.order() <= a.order() for k in kept) or len(kept) == 2:
            continue
        kept.append(a)
        # Floors on several metrics: each one that fails must be lowered, largest gap first.
        fails = sorted(a.fails, key=lambda ch: -(ch.gap or 0))
        concessions = " and ".join(_concession(ch, word) for ch in fails)
        out.append(
            f"Accepting {concessions} would make "
            f"{a.label} ({fmt.params(a.size)}) the choice{_saving(a, rec)}."
        )
    for a in [a for a in smaller if _only_fails(a, ("max_p95_ms",))][:1]:
        out.append(
            f"Allowing a p95 latency of {fmt.ms(a.rung.p95_ms)} would make {a.label} "
            f"({fmt.params(a.size)}) the choice{_saving(a, rec)}."
        )

    def better(a: Assessment) -> float | None:
        """How much better than the recommended rung on the metric (None: not better)."""
        if rec is None:
            return 0.0
        diff = metric_of(a, metric).value - metric_of(rec, metric).value
        return diff if diff > 0 else None

    for a in assessed:
        if a is rec:
            continue
        gain = better(a)
        if gain is None:
            continue
        more = f", {fmt.points(gain)} more {word}" if gain > 0 else ""
        if _only_fails(a, ("max_cost_per_1k",)) and a.cost_per_1k is not None:
            out.append(
                f"A budget of {fmt.usd(a.cost_per_1k)} per 1,000 requests would buy "
                f"{a.label}{more}."
            )
        elif _only_fails(a, ("on_prem",)):
            cost = f" at {fmt.usd(a.cost_per_1k)} per 1,000 requests" if a.cost_per_1k else ""
            out.append(
                f"Letting the data leave the premises would make {a.label} the choice{more}{cost}."
            )
        elif _only_fails(a, ("device",)) and c.device is not None and a.card is not None:
            out.extend(_device_alternatives(a, c, more))

    if c.has_floor:
        out.extend(_fine_tune(assessed, rec, c))

    if rec is not None:
        mine = metric_of(rec, metric)
        for a in assessed:
            theirs = metric_of(a, metric)
            if a is rec or theirs.value <= mine.value or theirs.overlaps(mine):
                continue
            cost = ""
            if a.cost_per_1k is not None and rec.cost_per_1k and a.cost_per_1k > rec.cost_per_1k:
                cost = f" and costs {a.cost_per_1k / rec.cost_per_1k:,.0f}× as much per request"
            failed = ", ".join(constraint_words(ch.constraint) for ch in a.fails)
            failing = f"; it fails {failed}" if a.fails else ""
            out.append(
                f"{a.label} is clearly {_higher(metric)} ({word} {theirs.show()}, "
                f"{fmt.points(theirs.value - mine.value)} higher; the intervals do not overlap)"
                f"{cost}{failing}. Choose it if that difference is worth it."
            )
    return out


def _device_alternatives(a: Assessment, c: Constraints, more: str) -> list[str]:
    assert a.card is not None and c.device is not None
    dev = get_device(c.device)
    out = []
    for q in quantization_options(a.card, dev, c.context):
        if q.fits and (a.card.weights_bytes is None or q.weights_bytes < a.card.weights_bytes):
            out.append(
                f"A {q.name} build of {a.label} (about {fmt.bytes_(q.total_bytes)} at "
                f"{c.context:,} tokens, estimated from {q.bits_per_weight:g} bits per weight) "
                f"would fit the {dev.name}{more}; re-measure it, quantization costs some quality."
            )
            break
    names = list(DEVICES)
    for bigger in names[names.index(dev.name) + 1 :]:
        if fit(a.card, DEVICES[bigger], c.context).fits:
            out.append(f"A {DEVICES[bigger].description} would fit {a.label}{more}.")
            break
    return out


def _fine_tune(assessed: list[Assessment], rec: Assessment | None, c: Constraints) -> list[str]:
    local = sorted((a for a in assessed if a.local), key=Assessment.order)
    if not local:
        return []

    def shortfall(a: Assessment) -> float:
        gaps = [ch.gap or 0.0 for ch in a.checks if floor_metric(ch.constraint) is not None]
        return max(gaps, default=0.0)

    if any(shortfall(a) <= 0 for a in local):
        return []
    # Fine-tuning mends quality, not latency, memory or cost: only a rung that fails the floor
    # alone is worth tuning.
    tunable = [a for a in local if _only_quality_fails(a, floors_only=True)]
    if not tunable:
        return []
    smallest = tunable[0]
    best = min(tunable, key=shortfall)
    floors = " and ".join(f"the {v:.2f} {metric_word(m)} floor" for m, v in c.floors().items())
    text = (
        f"No rung that runs on premises meets {floors}. Fine-tuning {smallest.label} "
        f"({fmt.params(smallest.size)}) on your labelled data is the way to meet it on premises: "
        f"it is {fmt.points(shortfall(smallest))} short"
    )
    if best is not smallest:
        text += f" (the closest such rung, {best.label}, is {fmt.points(shortfall(best))} short)"
    if rec is not None and rec.is_api:
        text += f"; it would replace {rec.label}'s API calls"
    return [text + "."]
