"""The answer ladder's climbing rule, with test doubles for the rungs (the models are not
what is under test here; the real ones answer in tests/serve/test_ask.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace

import pytest

from rung.errors import ModelAPIError
from rung.models.base import ClassifyRequest, GenerateRequest, Generation, Model, Prediction
from rung.rag.chunking import Chunk
from rung.rag.stores import Hit
from rung.route.answer import AnswerRung, climb_answer

PASSAGE = "You can return any item within 30 days of delivery for a full refund."
HITS = [Hit(Chunk("faq#0", "faq.md", None, 0, PASSAGE, 0, len(PASSAGE), (), "h"), 1.0)]
GROUNDED = "You can return any item within 30 days for a full refund [1]."
INVENTED = "Drones deliver refunds to Mars every Tuesday [1]."


class FakeGenerator(Model):
    """Replies with a fixed text (or fails), counting the prompts it was sent."""

    provider = "fake"
    can_generate = True

    def __init__(self, reply: str | Exception) -> None:
        super().__init__("fake")
        self.reply = reply
        self.prompts: list[GenerateRequest] = []

    def load(self) -> None:
        pass

    async def classify(self, requests: Sequence[ClassifyRequest]) -> list[Prediction]:
        raise NotImplementedError

    async def generate(self, request: GenerateRequest) -> Generation:
        self.prompts.append(request)
        if isinstance(self.reply, Exception):
            raise self.reply
        return Generation(self.reply, 100, 10, "stop")


class FakeClassifier(FakeGenerator):
    can_generate = False


def ladder(*models: Model) -> list[AnswerRung]:
    return [
        AnswerRung(f"r{i}", m, cost=lambda ti, to, i=i: (i + 1) / 1000)  # type: ignore[misc]
        for i, m in enumerate(models)
    ]


def climb(rungs: list[AnswerRung], min_confidence: float = 0.8):  # type: ignore[no-untyped-def]
    return asyncio.run(
        climb_answer(rungs, "How do I return it?", HITS, min_confidence=min_confidence)
    )


def test_a_grounded_small_answer_is_kept() -> None:
    small, large = FakeGenerator(GROUNDED), FakeGenerator(INVENTED)
    trace = climb(ladder(small, large))
    assert trace.answered_by == "r0" and trace.climbed_from == [] and not large.prompts
    assert trace.answer.cited_ids == ["faq#0"] and trace.cost_usd == pytest.approx(0.001)
    assert "[1] (faq.md)" in small.prompts[0].messages[-1].content


def test_an_ungrounded_answer_climbs_and_both_are_paid_for() -> None:
    trace = climb(ladder(FakeGenerator(INVENTED), FakeGenerator(GROUNDED)))
    assert trace.answered_by == "r1" and trace.climbed_from == ["r0"]
    assert [r for r, _ in trace.tried] == ["r0", "r1"] and trace.tried[0][1] == 0.0
    assert trace.cost_usd == pytest.approx(0.003) and trace.tokens_in == 200


def test_the_last_generating_rung_answers_whatever_its_confidence() -> None:
    trace = climb(ladder(FakeGenerator(INVENTED), FakeClassifier(GROUNDED)))
    assert trace.answered_by == "r0" and not trace.fallback
    assert [f.kind for f in trace.errors] == []


def test_classifiers_are_passed_over_and_failures_climbed_past() -> None:
    rungs = ladder(
        FakeClassifier(""), FakeGenerator(ModelAPIError("down")), FakeGenerator(INVENTED)
    )
    trace = climb(rungs)
    assert trace.answered_by == "r2" and trace.climbed_from == ["r0", "r1"]
    assert [f.kind for f in trace.errors] == ["skipped", "error"]


def test_when_the_top_fails_the_unsure_answer_is_a_fallback() -> None:
    trace = climb(ladder(FakeGenerator(INVENTED), FakeGenerator(ModelAPIError("down"))))
    assert trace.answered_by == "r0" and trace.fallback


def test_no_rung_that_generates_is_an_error() -> None:
    with pytest.raises(ModelAPIError, match="generates text"):
        climb(ladder(FakeClassifier("")))
    with pytest.raises(ModelAPIError, match="no rung answered"):
        climb(ladder(FakeGenerator(ModelAPIError("down"))))


def test_a_rungs_own_threshold_stands_over_the_ladders_floor() -> None:
    # a cascade calibrated on an answer run: r0 keeps even an ungrounded answer (threshold 0),
    # where the ladder's min_confidence of 0.8 alone would climb
    small, large = FakeGenerator(INVENTED), FakeGenerator(GROUNDED)
    rungs = ladder(small, large)
    rungs[0] = replace(rungs[0], threshold=0.0)
    trace = climb(rungs)
    assert trace.answered_by == "r0" and not large.prompts
    # and an ungrounded answer under r0's threshold climbs, where the floor of 0 would keep it
    strict = ladder(FakeGenerator(INVENTED), FakeGenerator(GROUNDED))
    strict[0] = replace(strict[0], threshold=0.5)
    climbed = climb(strict, min_confidence=0.0)
    assert climbed.answered_by == "r1" and climbed.climbed_from == ["r0"]
