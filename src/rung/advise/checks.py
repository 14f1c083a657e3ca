"""Each constraint checked on one rung: a pass, a fail with the gap, or unknown."""

from __future__ import annotations

from collections.abc import Callable

from rung import fmt
from rung.advise.figures import (
    Assessment,
    Check,
    Constraints,
    Interval,
    RungFigures,
    Status,
    floor_name,
    metric_word,
)
from rung.catalog.cards import ModelCard
from rung.catalog.devices import DEVICES, Device, get_device
from rung.catalog.memory import fit

__all__ = ["DEFAULT_COST_DEVICE", "assess", "cost_device"]

#: the device class whose hourly price turns local throughput into cost when none is named
DEFAULT_COST_DEVICE = "laptop"


def cost_device(c: Constraints) -> Device:
    return get_device(c.device) if c.device else DEVICES[DEFAULT_COST_DEVICE]


def _cost(r: RungFigures, card: ModelCard | None, c: Constraints) -> tuple[float | None, str]:
    if card is not None and card.kind == "api" and card.price is not None:
        p = card.price
        per_request = p.cost(r.tokens_in_per_request, r.tokens_out_per_request)
        return per_request * 1000, (
            f"API tokens: {r.tokens_in_per_request:.0f} in + {r.tokens_out_per_request:.0f} out "
            f"per request at ${p.input_per_mtok:g}/M in, ${p.output_per_mtok:g}/M out, "
            f"{p.source}"
        )
    if card is not None and card.kind == "api" and not card.on_prem:
        return None, f"no token price is known for {r.model}"
    if r.cost_usd_per_1k is not None and c.hourly_price is None and c.device is None:
        # The comparison priced it already (its machine profile, its best load level): one
        # figure for the same rung everywhere.
        return r.cost_usd_per_1k, f"as `rung compare` measured it: {r.cost_detail}"
    if r.throughput_per_s <= 0:
        return None, "no throughput was measured"
    dev = cost_device(c)
    hourly = c.hourly_price if c.hourly_price is not None else dev.hourly_usd
    whose = "your price" if c.hourly_price is not None else f"the {dev.name} class default"
    cost = hourly / (r.throughput_per_s * 3600) * 1000
    if hourly == 0:
        return cost, f"no machine cost to you: it runs on the user's own device ({whose}, $0/h)"
    return cost, (
        f"machine time: {r.throughput_per_s:.1f} requests/s measured, at ${hourly:g}/h, {whose}"
    )


def _floor_check(metric: str, est: Interval | None, floor: float) -> Check:
    name, word = floor_name(metric), metric_word(metric)
    if est is None:
        # A rung of the run that lacks a metric its others have: unknown, never a pass.
        return Check(name, "unknown", None, floor, None, f"{word} was not measured on this rung")
    gap = floor - est.value
    if gap <= 0:
        return Check(
            name, "pass", est.value, floor, gap, f"{word} {est.show()} meets the {floor:.2f} floor"
        )
    return Check(
        name, "fail", est.value, floor, gap,
        f"{word} {est.value:.3f} is {fmt.points(gap)} under the {floor:.2f} floor",
    )  # fmt: skip


def _max_check(
    name: str, word: str, value: float | None, limit: float | None, show: Callable[[float], str],
    why_unknown: str = "",
) -> Check | None:  # fmt: skip
    if limit is None:
        return None
    if value is None:
        return Check(name, "unknown", None, limit, None, f"{word} is unknown ({why_unknown})")
    gap = value - limit
    if gap <= 0:
        return Check(
            name, "pass", value, limit, gap, f"{word} {show(value)} is within {show(limit)}"
        )
    over = f" ({gap / limit:.0%} over)" if limit > 0 else ""
    return Check(
        name, "fail", value, limit, gap,
        f"{word} {show(value)} is {show(gap)} over the {show(limit)} limit{over}",
    )  # fmt: skip


def _guessing_check(r: RungFigures) -> Check | None:
    """A rung no better than guessing is never the answer, whatever the constraints: the low
    end of its accuracy interval must be above the best baseline's accuracy. Only runs with
    baselines (classify) have the check."""
    accuracy = r.metric("accuracy")
    if r.guessing is None or accuracy is None:
        return None
    name, acc = r.guessing
    gap = acc - accuracy.low
    if gap < 0:
        return Check(
            "beats_guessing", "pass", accuracy.low, acc, gap,
            f"accuracy {accuracy.show()} is above guessing ({name}: {acc:.3f})",
        )  # fmt: skip
    return Check(
        "beats_guessing", "fail", accuracy.low, acc, gap,
        f"accuracy {accuracy.show()} is no better than guessing ({name}: {acc:.3f})",
    )  # fmt: skip


def _device_check(card: ModelCard | None, c: Constraints) -> tuple[Check | None, int | None]:
    if c.device is None:
        if card is None or card.kind == "api":
            return None, None
        return None, card.memory(c.context).total_bytes
    dev = get_device(c.device)
    if card is None:
        why = "its memory needs are unknown (no model card)"
        return Check("device", "unknown", None, dev.name, None, why), None
    if card.kind == "api":
        where = "a server you host" if card.on_prem else "an API"
        return Check(
            "device", "pass", None, dev.name, None,
            f"runs behind {where}; the {dev.name} only sends requests",
        ), None  # fmt: skip
    f = fit(card, dev, c.context)
    need = f.memory.total_bytes
    if f.fits is None or need is None or f.spare_bytes is None:
        why = "; ".join(f.memory.notes) or "the model's metadata is incomplete"
        text = f"its memory needs are unknown ({why})"
        return Check("device", "unknown", None, dev.name, None, text), need
    ctx = f"at a {f.memory.context:,}-token context"
    if f.fits:
        return Check(
            "device", "pass", need, dev.usable_bytes, -f.spare_bytes,
            f"needs about {fmt.bytes_(need)} {ctx}; the {dev.name} leaves "
            f"{fmt.bytes_(dev.usable_bytes)} usable ({fmt.bytes_(f.spare_bytes)} to spare)",
        ), need  # fmt: skip
    return Check(
        "device", "fail", need, dev.usable_bytes, -f.spare_bytes,
        f"needs about {fmt.bytes_(need)} {ctx}, {fmt.bytes_(-f.spare_bytes)} more than the "
        f"{fmt.bytes_(dev.usable_bytes)} a {dev.name} leaves usable",
    ), need  # fmt: skip


def _on_prem_check(card: ModelCard | None, c: Constraints) -> Check | None:
    if not c.on_prem:
        return None
    if card is None or card.on_prem is None:
        return Check(
            "on_prem", "unknown", None, True, None,
            "whether it runs on premises is unknown; set on_prem in a catalog file",
        )  # fmt: skip
    if card.on_prem:
        return Check("on_prem", "pass", True, True, None, "runs on premises: the data stays")
    where = card.price.provider if card.price else "a remote API"
    return Check("on_prem", "fail", False, True, None, f"sends the data off premises (to {where})")


def _concurrency_check(r: RungFigures, c: Constraints, any_load: bool) -> Check | None:
    if c.concurrency is None or not any_load:
        return None
    points = [p for p in r.load if p.concurrency >= c.concurrency]
    if not points:
        top = max((p.concurrency for p in r.load), default=0)
        return Check(
            "concurrency", "unknown", top, c.concurrency, None,
            f"was measured with at most {top} concurrent users, not {c.concurrency}",
        )  # fmt: skip
    p = min(points, key=lambda x: x.concurrency)
    if p.errors:
        return Check(
            "concurrency", "fail", p.errors, 0, float(p.errors),
            f"failed {p.errors} of {p.requests} requests at {p.concurrency} concurrent users",
        )  # fmt: skip
    if c.max_p95_ms is None or p.p95_ms is None:
        return Check(
            "concurrency", "pass", p.concurrency, c.concurrency, None,
            f"served {p.concurrency} concurrent users in the load test",
        )  # fmt: skip
    gap = p.p95_ms - c.max_p95_ms
    status: Status = "pass" if gap <= 0 else "fail"
    return Check(
        "concurrency", status, p.p95_ms, c.max_p95_ms, gap,
        f"p95 latency at {p.concurrency} concurrent users is {fmt.ms(p.p95_ms)} "
        f"({'within' if status == 'pass' else 'over'} {fmt.ms(c.max_p95_ms)})",
    )  # fmt: skip


def assess(r: RungFigures, card: ModelCard | None, c: Constraints, any_load: bool) -> Assessment:
    cost, basis = _cost(r, card, c)
    device, memory = _device_check(card, c)
    checks = [
        _guessing_check(r),
        *(_floor_check(m, r.metric(m), floor) for m, floor in c.floors().items()),
        _max_check("max_p95_ms", "p95 latency", r.p95_ms, c.max_p95_ms, fmt.ms),
        _max_check(
            "max_cost_per_1k", "cost per 1,000 requests", cost, c.max_cost_per_1k, fmt.usd, basis
        ),
        device,
        _on_prem_check(card, c),
        _concurrency_check(r, c, any_load),
    ]
    return Assessment(r, card, cost, basis, memory, tuple(x for x in checks if x is not None))
