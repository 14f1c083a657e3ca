"""The answer task's metrics as pure functions: SQuAD-style EM and F1, ROUGE-L from
rouge-score, citations against gold passages, retrieval figures checked with ir-measures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rung.errors import DataError
from rung.rag.answer import read_answer
from rung.rag.chunking import Chunk
from rung.rag.stores import Hit
from rung.tasks.answer import (
    AnswerData,
    AnswerExample,
    AnswerTask,
    exact_match,
    load_questions,
    rouge_l,
    score_answer,
    summarize,
    token_f1,
)

TEXTS = {
    "3": "You can return an item within 30 days.",
    "7": "Shipping takes 3-5 business days.",
    "9": "We accept PayPal and credit cards.",
}


def hits(order: list[str]) -> list[Hit]:
    return [
        Hit(Chunk(f"faq.json#{r}#0", "faq.json", r, 0, TEXTS[r], 0, len(TEXTS[r]), (), "h"), 1.0)
        for r in order
    ]


def test_exact_match_and_token_f1_normalize_like_squad() -> None:
    assert exact_match("The refund, [1]", "refund") == 1.0
    assert exact_match("a refund in 30 days", "refund") == 0.0
    assert token_f1("30 days for a refund [2]", "a refund within 30 days") == pytest.approx(
        2 * (3 / 4) * (3 / 4) / (3 / 4 + 3 / 4)
    )
    assert token_f1("", "") == 1.0 and token_f1("x", "") == 0.0


def test_rouge_l_is_rouge_scores_f_measure_without_citations() -> None:
    from rouge_score import rouge_scorer

    ref, pred = "returns are accepted within 30 days", "returns accepted in 30 days [1]"
    theirs = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True).score(
        ref, "returns accepted in 30 days"
    )
    assert rouge_l(pred, ref) == pytest.approx(theirs["rougeL"].fmeasure)


def test_citations_and_retrieval_against_the_gold_record() -> None:
    retrieved = hits(["7", "3", "9"])
    example = AnswerExample("q", "How do returns work?", "within 30 days", gold=("3",))
    answer = read_answer(
        "You can return an item within 30 days [2]. Shipping is fast [1].", retrieved
    )
    scores = score_answer(example, retrieved, answer, k=3)
    assert scores["citation_precision"] == 0.5 and scores["citation_recall"] == 1.0
    assert scores["retrieval_recall"] == 1.0 and scores["retrieval_mrr"] == 0.5

    import ir_measures
    from ir_measures import RR, Qrel, R, ScoredDoc, nDCG

    qrels = [Qrel("q", "3", 1)]
    run = [ScoredDoc("q", r, 3.0 - i) for i, r in enumerate(["7", "3", "9"])]
    theirs = {
        str(m.measure): m.value
        for m in ir_measures.iter_calc([R @ 3, RR @ 3, nDCG @ 3], qrels, run)
    }
    assert scores["retrieval_recall"] == pytest.approx(theirs["R@3"])
    assert scores["retrieval_mrr"] == pytest.approx(theirs["RR@3"])
    assert scores["retrieval_ndcg"] == pytest.approx(theirs["nDCG@3"])


def test_without_gold_only_answer_metrics_are_scored() -> None:
    retrieved = hits(["9"])
    answer = read_answer("We accept PayPal [1].", retrieved)
    scores = score_answer(AnswerExample("q", "Pay?", "PayPal"), retrieved, answer, k=1)
    assert scores["citation_recall"] is None and scores["from_context"] == 1.0
    summary = summarize([scores, scores], resamples=100)
    assert "citation_recall" not in summary and summary["from_context"].value == 1.0


def test_questions_load_from_a_json_object_holding_a_list(tmp_path: Path) -> None:
    path = tmp_path / "qa.json"
    path.write_text(json.dumps({"questions": [{"question": "Q?", "answer": "A", "rec": ["3"]}]}))
    [example] = load_questions(AnswerData(path=path, gold="rec"), tmp_path)
    assert example == AnswerExample("1", "Q?", "A", ("3",))
    path.write_text(json.dumps([{"question": "Q?"}]))
    with pytest.raises(DataError, match="no 'answer'"):
        load_questions(AnswerData(path=path), tmp_path)


def test_the_task_names_one_source_of_passages() -> None:
    with pytest.raises(ValueError, match="one"):
        AnswerTask.model_validate({"type": "answer", "data": {"path": "q.jsonl"}})
