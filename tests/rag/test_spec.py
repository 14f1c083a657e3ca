"""The ``index:`` section of a spec: validated like the rest of a spec, built like the
command builds, with paths relative to the spec's folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from rung.rag import Retriever
from rung.rag.spec import IndexSpec


def test_an_index_section_builds_relative_to_its_file(docs: Path, hash_embedder: str) -> None:
    spec = IndexSpec.model_validate(
        {
            "docs": ["docs/returns.md", "docs/faq.jsonl"],
            "out": "idx",
            "model": hash_embedder,
            "chunk_tokens": 32,
            "overlap": 4,
            "id": "id",
        }
    )
    base = docs.parent
    report = spec.build(base)
    assert report.files == 2 and report.embedded == report.chunks
    assert spec.location(base).endswith("idx/index.db")
    retriever = Retriever.open(base / "idx")
    assert retriever.meta.model_id == hash_embedder and retriever.meta.chunk_tokens == 32
    hits = retriever.search("refund", k=2, mode="keyword")
    assert hits and hits[0].chunk.source == "returns.md"
    retriever.close()


def test_an_index_section_is_checked() -> None:
    with pytest.raises(ValidationError, match="extra"):
        IndexSpec.model_validate({"docs": ["d"], "out": "o", "chunk_size": 10})
    with pytest.raises(ValidationError, match="give out"):
        IndexSpec.model_validate({"docs": ["d"]})
    with pytest.raises(ValidationError):
        IndexSpec.model_validate({"docs": [], "out": "o"})
    with pytest.raises(ValidationError, match="--overlap"):
        IndexSpec.model_validate({"docs": ["d"], "out": "o", "chunk_tokens": 16, "overlap": 12})
