"""Retrieval metrics as pure functions over (ranked ids, gold ids), registered by name, and
their mean over queries with a bootstrap 95% interval.

Relevance is binary (an id is gold or not). ``recall@k`` is the share of the gold ids found in
the first k; ``mrr@k`` the reciprocal rank of the first gold id within k (0 when none is);
``ndcg@k`` the discounted cumulative gain of the first k over that of the ideal ranking, with
the log2(rank + 1) discount. They agree with trec_eval's R@k, RR@k and nDCG@k (the tests check
them against ir-measures).

Ranked ids are taken as given: a ranking of documents made from chunk hits should keep each
document's first appearance only (``unique``), as a reader of the answers would.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable, Sequence

from rung.tasks.metrics import Estimate, bootstrap_mean

__all__ = [
    "METRICS",
    "RetrievalMetric",
    "evaluate",
    "metric",
    "mrr_at_k",
    "ndcg_at_k",
    "recall_at_k",
    "unique",
]

RetrievalMetric = Callable[[Sequence[str], Collection[str], int], float]
METRICS: dict[str, RetrievalMetric] = {}


def metric(name: str) -> Callable[[RetrievalMetric], RetrievalMetric]:
    """Register a retrieval metric under ``name`` (``recall``, ``mrr``, ``ndcg``...)."""

    def register(fn: RetrievalMetric) -> RetrievalMetric:
        METRICS[name] = fn
        return fn

    return register


@metric("recall")
def recall_at_k(ranked: Sequence[str], gold: Collection[str], k: int) -> float:
    if not gold:
        return 0.0
    return len(set(ranked[:k]) & set(gold)) / len(set(gold))


@metric("mrr")
def mrr_at_k(ranked: Sequence[str], gold: Collection[str], k: int) -> float:
    relevant = set(gold)
    for rank, item in enumerate(ranked[:k], 1):
        if item in relevant:
            return 1.0 / rank
    return 0.0


@metric("ndcg")
def ndcg_at_k(ranked: Sequence[str], gold: Collection[str], k: int) -> float:
    relevant = set(gold)
    if not relevant:
        return 0.0
    seen: set[str] = set()
    dcg = 0.0
    for i, item in enumerate(ranked[:k]):
        if item in relevant and item not in seen:  # a repeated id gains nothing twice
            dcg += 1.0 / math.log2(i + 2)
        seen.add(item)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(k, len(relevant))))
    return dcg / ideal


def unique(ids: Iterable[str]) -> list[str]:
    """``ids`` with repeats dropped, first appearance kept."""
    return list(dict.fromkeys(ids))


def evaluate(
    runs: Sequence[tuple[Sequence[str], Collection[str]]],
    k: int,
    names: Sequence[str] = ("recall", "mrr", "ndcg"),
    *,
    resamples: int = 1000,
    seed: int = 0,
) -> dict[str, Estimate]:
    """Each metric's mean over the queries (one (ranked, gold) pair each) with its bootstrap
    interval, keyed ``recall@5`` and so on."""
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ValueError(f"unknown retrieval metric {unknown[0]!r}; known: {sorted(METRICS)}")
    return {
        f"{name}@{k}": bootstrap_mean(
            [METRICS[name](ranked, gold, k) for ranked, gold in runs],
            resamples=resamples,
            seed=seed,
        )
        for name in names
    }
