"""The cascade's answer path, next to classify's: a question over retrieved passages goes to the
smallest rung that generates; its reply is read against the passages (``rung.rag.answer``) and
kept when its grounded confidence reaches ``min_confidence``, else the question climbs.

Classify climbs on the label's probability (``rung.route.policy.decide`` with each rung's own
threshold); an answer climbs on how well it stands on its passages, with one threshold for the
whole ladder, because a grounded confidence means the same thing on every rung. Rungs that do
not generate (an encoder) are passed over; a rung that fails or times out is climbed past, as
in classify; when no rung reaches the threshold, the top rung that answered keeps the question
(``fallback``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

from rung.errors import ModelAPIError, RungError
from rung.models.base import Model
from rung.rag.answer import INSTRUCTIONS, GroundedAnswer, answer_request, reply_of
from rung.rag.stores import Hit
from rung.route.cascade import CascadeModel, RungFailure

__all__ = ["AnswerRung", "AnswerTrace", "cascade_rungs", "climb_answer"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AnswerRung:
    """One rung of an answer ladder: its name, its model, its time-out, and what a call costs
    from its token counts (None: unknown)."""

    name: str
    model: Model
    timeout_s: float | None = None
    cost: Callable[[int, int], float | None] = lambda tokens_in, tokens_out: 0.0
    #: the grounded confidence at or above which this rung keeps its answer (a cascade
    #: calibrated on an answer run); None: the ladder's ``min_confidence``
    threshold: float | None = None


def cascade_rungs(cascade: CascadeModel) -> list[AnswerRung]:
    """A loaded cascade's rungs as an answer ladder, with their time-outs and costs."""
    return [
        AnswerRung(
            name,
            model,
            cascade.rung_timeout(k),
            partial(cascade.rung_cost, k),
            cascade.opts.rungs[k].threshold if cascade.opts.confidence == "grounded" else None,
        )
        for k, (name, model) in enumerate(zip(cascade.names, cascade.rungs, strict=True))
    ]


@dataclass
class AnswerTrace:
    """The answer that was kept and the path to it."""

    answer: GroundedAnswer
    answered_by: str
    climbed_from: list[str]
    errors: list[RungFailure]
    #: every rung that answered; None when one of their costs is unknown
    cost_usd: float | None
    tokens_in: int
    tokens_out: int
    fallback: bool = False
    #: (rung, grounded confidence) of every answer made on the way, the kept one last
    tried: list[tuple[str, float]] = field(default_factory=list)


async def climb_answer(
    rungs: Sequence[AnswerRung],
    question: str,
    hits: Sequence[Hit],
    *,
    min_confidence: float,
    max_tokens: int = 256,
    min_overlap: float = 0.6,
    instructions: str = INSTRUCTIONS,
) -> AnswerTrace:
    """Ask the rungs in order until one's answer is grounded enough; see the module docstring."""
    request = answer_request(question, hits, max_tokens, instructions)
    failures: list[RungFailure] = []
    passed: list[str] = []
    answers: list[tuple[AnswerRung, GroundedAnswer]] = []
    generating = [r for r in rungs if r.model.can_generate]
    if not generating:
        names = ", ".join(r.name for r in rungs)
        raise ModelAPIError(f"none of the rungs ({names}) generates text, so none can answer")
    for rung in rungs:
        if not rung.model.can_generate:
            failures.append(RungFailure(rung.name, "skipped", "does not generate text"))
            passed.append(rung.name)
            continue
        call = rung.model.generate(request)
        try:
            generation = await (
                asyncio.wait_for(call, rung.timeout_s) if rung.timeout_s is not None else call
            )
        except TimeoutError:
            failures.append(
                RungFailure(rung.name, "timeout", f"no answer within {rung.timeout_s:g} s")
            )
            passed.append(rung.name)
            continue
        except Exception as e:  # any failure of a rung is what the ladder climbs past
            message = str(e) if isinstance(e, RungError) else f"{type(e).__name__}: {e}"
            log.warning("rung %s failed to answer, climbing: %s", rung.name, message)
            failures.append(RungFailure(rung.name, "error", message))
            passed.append(rung.name)
            continue
        answer = reply_of(generation, hits, min_overlap=min_overlap)
        answers.append((rung, answer))
        floor = rung.threshold if rung.threshold is not None else min_confidence
        if rung is generating[-1] or answer.grounding.confidence >= floor:
            return _trace(answers, passed, failures, fallback=False)
        passed.append(rung.name)
    if answers:
        return _trace(answers, passed, failures, fallback=True)
    raise ModelAPIError(
        "no rung answered: "
        + "; ".join(f"{f.rung}: {f.message}" for f in failures)
        + "; check the rungs' endpoints and options"
    )


def _trace(
    answers: list[tuple[AnswerRung, GroundedAnswer]],
    passed: list[str],
    failures: list[RungFailure],
    *,
    fallback: bool,
) -> AnswerTrace:
    kept_rung, kept = answers[-1]
    costs = [r.cost(a.tokens_in, a.tokens_out) for r, a in answers]
    known = [c for c in costs if c is not None]
    return AnswerTrace(
        answer=kept,
        answered_by=kept_rung.name,
        climbed_from=[n for n in passed if n != kept_rung.name],
        errors=failures,
        cost_usd=sum(known) if len(known) == len(costs) else None,
        tokens_in=sum(a.tokens_in for _, a in answers),
        tokens_out=sum(a.tokens_out for _, a in answers),
        fallback=fallback,
        tried=[(r.name, a.grounding.confidence) for r, a in answers],
    )
