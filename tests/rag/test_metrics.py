"""Retrieval metrics against ir-measures (trec_eval's definitions) on random runs, reciprocal
rank fusion on a worked example, and the bootstrap interval."""

from __future__ import annotations

import random

import pytest

from rung.rag.chunking import Chunk
from rung.rag.metrics import evaluate, mrr_at_k, ndcg_at_k, recall_at_k, unique
from rung.rag.stores import Hit, rrf


def _runs(seed: int) -> list[tuple[list[str], set[str]]]:
    rng = random.Random(seed)
    runs = []
    for _ in range(60):
        pool = [f"d{i}" for i in range(30)]
        rng.shuffle(pool)
        gold = set(rng.sample(pool, rng.randint(1, 4)))
        runs.append((pool[: rng.randint(1, 20)], gold))
    return runs


@pytest.mark.parametrize("k", [1, 3, 5, 10])
def test_metrics_agree_with_ir_measures(k: int) -> None:
    import ir_measures
    from ir_measures import RR, Qrel, R, ScoredDoc, nDCG

    runs = _runs(k)
    qrels = [Qrel(str(q), d, 1) for q, (_, gold) in enumerate(runs) for d in gold]
    scored = [
        ScoredDoc(str(q), d, float(len(ranked) - i))
        for q, (ranked, _) in enumerate(runs)
        for i, d in enumerate(ranked)
    ]
    theirs: dict[tuple[str, str], float] = {}
    for m in ir_measures.iter_calc([R @ k, RR @ k, nDCG @ k], qrels, scored):
        theirs[(str(m.measure), m.query_id)] = m.value
    for q, (ranked, gold) in enumerate(runs):
        assert recall_at_k(ranked, gold, k) == pytest.approx(theirs[(f"R@{k}", str(q))])
        assert mrr_at_k(ranked, gold, k) == pytest.approx(theirs.get((f"RR@{k}", str(q)), 0.0))
        assert ndcg_at_k(ranked, gold, k) == pytest.approx(theirs[(f"nDCG@{k}", str(q))])


def test_evaluate_means_with_intervals() -> None:
    runs = _runs(0)
    scores = evaluate(runs, k=5)
    assert set(scores) == {"recall@5", "mrr@5", "ndcg@5"}
    for name, est in scores.items():
        low, high = est.ci95
        assert low <= est.value <= high, name
        assert 0.0 <= low < high <= 1.0
    expected = sum(recall_at_k(r, g, 5) for r, g in runs) / len(runs)
    assert scores["recall@5"].value == pytest.approx(expected)
    with pytest.raises(ValueError, match="unknown retrieval metric"):
        evaluate(runs, k=5, names=["precision"])


def test_unique_keeps_first_appearances() -> None:
    assert unique(["a", "b", "a", "c", "b"]) == ["a", "b", "c"]


def _hit(cid: str) -> Hit:
    return Hit(Chunk(cid, "s", None, 0, cid, 0, 1, (), "h"), 0.0)


def test_rrf_sums_reciprocal_ranks() -> None:
    vector = [_hit("a"), _hit("b"), _hit("c")]
    keyword = [_hit("c"), _hit("d"), _hit("a")]
    fused = rrf([vector, keyword], k=4)
    scores = {h.chunk.id: h.score for h in fused}
    assert scores["a"] == pytest.approx(1 / 61 + 1 / 63)
    assert scores["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert scores["b"] == pytest.approx(1 / 62)
    assert scores["d"] == pytest.approx(1 / 62)
    # a and c tie; a came first. b before d: same score, b seen first
    assert [h.chunk.id for h in fused] == ["a", "c", "b", "d"]
    assert [h.chunk.id for h in rrf([vector, keyword], k=2)] == ["a", "c"]
