"""Retrieval on the e-commerce FAQ (../shared/data/ecommerce_faq, 79 Q/A pairs) with the
bundled MiniLM: the answers are indexed, each question is asked, and its own answer must come
back among the first five far more often than chance (5/79)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rung.rag import Embedder, Retriever, build_index, evaluate, unique
from rung.rag.search import INDEX_DB
from rung.rag.stores import open_store, sqlite_url


@pytest.fixture(scope="module")
def faq(shared_data: Path) -> Path:
    return shared_data / "ecommerce_faq" / "Ecommerce_FAQ_Chatbot_dataset.json"


def test_recall_at_5_on_the_ecommerce_faq(faq: Path, tmp_path: Path, minilm: Embedder) -> None:
    questions = [q["question"] for q in json.loads(faq.read_text(encoding="utf-8"))["questions"]]
    store = open_store(sqlite_url(tmp_path / INDEX_DB))
    report = build_index([faq], store, embedder=minilm)  # the text column found: "answer"
    assert report.documents == len(questions) == 79 and report.chunks == 79
    meta = store.read_meta()
    assert meta is not None

    retriever = Retriever(store, meta, minilm)
    figures = {}
    for mode in ("vector", "keyword", "hybrid"):
        runs = []
        for i, question in enumerate(questions, 1):
            hits = retriever.search(question, k=10, mode=mode)  # type: ignore[arg-type]
            runs.append((unique(h.chunk.record or "" for h in hits), {str(i)}))
        figures[mode] = evaluate(runs, k=5)
    store.close()
    chance = 5 / 79
    for mode, scores in figures.items():
        line = ", ".join(
            f"{name} {e.value:.3f} [{e.ci95[0]:.2f}-{e.ci95[1]:.2f}]" for name, e in scores.items()
        )
        print(f"ecommerce_faq, MiniLM-L6, {mode}: {line} (chance recall@5 {chance:.3f})")
    assert figures["vector"]["recall@5"].value > 0.8
    assert figures["hybrid"]["recall@5"].value > 0.8
    assert figures["keyword"]["recall@5"].value > 0.5
    assert figures["vector"]["recall@5"].ci95[0] > 10 * chance
