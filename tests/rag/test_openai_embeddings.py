"""An index whose vectors come from an OpenAI-compatible embeddings endpoint: llama-cpp-python's
server (SmolLM2, embeddings on), through the openai backend. Queries go to the same server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rung.rag import Retriever, build_index
from rung.rag.stores import open_store, sqlite_url
from tests.llama_server import running_llama_server


@pytest.fixture(scope="module")
def embeddings_url() -> Iterator[str]:
    with running_llama_server(extra_args=("--embedding", "true")) as base_url:
        yield base_url


def test_index_and_search_with_openai_embeddings(
    docs: Path, tmp_path: Path, embeddings_url: str
) -> None:
    store = open_store(sqlite_url(tmp_path / "index.db"))
    report = build_index(
        [docs / "returns.md", docs / "faq.jsonl"],
        store,
        model_id="openai:smollm2",
        # one text per request: llama-cpp-python mixes up the texts of a batch for a model
        # without a pooling layer (see tests/models/test_openai.py)
        model_options={"base_url": embeddings_url, "embed_batch": 1},
    )
    meta = store.read_meta()
    store.close()
    assert meta is not None and meta.model_id == "openai:smollm2" and meta.dimension == 576
    assert meta.model_options == {"base_url": embeddings_url, "embed_batch": 1}
    assert report.embedded == report.chunks > 2 and report.tokens > 0

    retriever = Retriever.open(tmp_path / "index.db")
    hits = retriever.search("Refunds reach your card within 5 business days.", k=2, mode="vector")
    retriever.close()
    # a chunk's own words find that chunk: the query went through the same model
    assert "Refunds reach your card" in hits[0].chunk.text
    assert hits[0].score > hits[1].score
