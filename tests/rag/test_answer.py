"""The grounded-answer reading: prompt, citations, support, confidence, as pure functions."""

from __future__ import annotations

import math

from rung.rag.answer import (
    ABSTAIN,
    cited_numbers,
    ground,
    grounded_prompt,
    read_answer,
    sentences,
    strip_citations,
)
from rung.rag.chunking import Chunk
from rung.rag.stores import Hit

PASSAGES = [
    "You can return any item within 30 days of delivery for a full refund.",
    "Standard shipping takes 3-5 business days; express shipping takes 1-2 days.",
    "We accept major credit cards, debit cards, and PayPal.",
]


def hits() -> list[Hit]:
    return [
        Hit(
            Chunk(
                f"faq.md#{i}", "faq.md", None, i, text, i * 100, i * 100 + len(text), ("FAQ",), "h"
            ),
            1.0 - i / 10,
        )
        for i, text in enumerate(PASSAGES)
    ]


def test_prompt_numbers_the_passages_with_their_sources() -> None:
    system, user = grounded_prompt("How long does shipping take?", hits())
    assert system.role == "system" and "[1]" in system.content and ABSTAIN in system.content
    assert "[1] (faq.md > FAQ)\nYou can return" in user.content
    assert "[3] (faq.md > FAQ)\nWe accept" in user.content
    assert user.content.endswith("Question: How long does shipping take?\nAnswer:")


def test_citations_are_parsed_and_those_outside_the_passages_dropped() -> None:
    text = "Shipping takes 3-5 business days [2]. Express takes 1-2 days [2, 7][9]."
    assert cited_numbers(text) == [2, 2, 7, 9]
    answer = read_answer(text, hits())
    assert answer.cited_ids == ["faq.md#1"]
    assert answer.citations[0].start == 100 and answer.citations[0].source == "faq.md"
    assert answer.grounding.dropped_citations == 2
    assert strip_citations(text) == "Shipping takes 3-5 business days. Express takes 1-2 days."


def test_a_citation_after_the_full_stop_stays_with_its_sentence() -> None:
    assert sentences("Returns are free. [1]\nWe take PayPal. [3]") == [
        "Returns are free. [1]",
        "We take PayPal. [3]",
    ]


def test_supported_answer_is_from_context_with_full_confidence() -> None:
    g = ground("You can return an item within 30 days for a full refund [1].", PASSAGES)
    assert g.from_context and g.supported == 1 and g.confidence == 1.0


def test_a_sentence_citing_the_wrong_passage_is_not_supported() -> None:
    g = ground("You can return an item within 30 days for a full refund [3].", PASSAGES)
    assert not g.from_context and g.supported == 0 and g.confidence == 0.0


def test_uncited_but_supported_sentences_count_half() -> None:
    g = ground("We accept credit cards, debit cards and PayPal.", PASSAGES)
    assert g.from_context and g.supported_uncited == 1 and g.confidence == 0.5


def test_an_invented_claim_lowers_the_confidence() -> None:
    text = "Standard shipping takes 3-5 business days [2]. Drones deliver parcels on Mars [2]."
    g = ground(text, PASSAGES)
    assert g.sentences == 2 and g.supported == 1 and g.confidence == 0.5
    assert not g.from_context


def test_a_quote_must_be_found_word_for_word() -> None:
    good = ground('The policy says "within 30 days of delivery" [1].', PASSAGES)
    bad = ground('The policy says "within 60 days of delivery" [1].', PASSAGES)
    assert good.quotes_missing == 0 and good.from_context
    assert bad.quotes_missing == 1 and not bad.from_context


def test_abstaining_has_no_confidence() -> None:
    g = ground(f"{ABSTAIN}.", PASSAGES)
    assert g.abstained and g.confidence == 0.0 and not g.from_context
    assert ground("", PASSAGES).abstained


def test_logprob_enters_as_a_geometric_mean() -> None:
    g = ground("We accept PayPal [3].", PASSAGES, mean_logprob=math.log(0.25))
    assert math.isclose(g.confidence, math.sqrt(1.0 * 0.25))


def test_list_markers_are_not_sentences() -> None:
    assert sentences("1. We accept PayPal [3].\n2. Returns take 30 days [1].") == [
        "We accept PayPal [3].",
        "Returns take 30 days [1].",
    ]
