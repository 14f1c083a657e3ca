"""The ``index:`` section a spec or a serve config can hold: what ``rung index`` takes, as
data. Paths are relative to the file the section is in.

    index:
      docs: [docs/, faq.jsonl]
      out: indexes/support          # or store: postgresql://rung@db/rung?collection=support
      model: encoder:minilm-l6
      chunk_tokens: 256
      overlap: 32
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rung.errors import SpecError
from rung.rag.chunking import ChunkOptions
from rung.rag.documents import ReadOptions
from rung.rag.indexer import IndexProgress, IndexReport, build_index
from rung.rag.search import INDEX_DB, store_url_for, write_pointer
from rung.rag.stores import open_store

__all__ = ["IndexSpec"]


class IndexSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    docs: list[str] = Field(
        min_length=1, description="Files or folders to index, relative to this file."
    )
    out: str | None = Field(
        default=None,
        description=f"Index folder, relative to this file ({INDEX_DB} inside, or index.json "
        "naming `store`).",
    )
    store: str | None = Field(
        default=None,
        description="A server store for the chunks: postgresql://..., weaviate://... "
        "(default: SQLite in `out`).",
    )
    model: str | None = Field(
        default=None,
        description="Embedding rung (default: the index's own, else encoder:minilm-l6).",
    )
    model_options: dict[str, Any] = Field(
        default_factory=dict, description="Options of the embedding rung."
    )
    chunk_tokens: int = Field(default=256, ge=8, description="Tokens per chunk.")
    overlap: int = Field(default=32, ge=0, description="Tokens shared with the chunk before.")
    text: str | None = Field(default=None, description="Tables: the text column.")
    id: str | None = Field(default=None, description="Tables: the id column.")
    title: str | None = Field(default=None, description="Tables: a title column.")

    @model_validator(mode="after")
    def _somewhere(self) -> IndexSpec:
        if self.out is None and self.store is None:
            raise ValueError("give out (an index folder), store (a store URL), or both")
        try:
            ChunkOptions(self.chunk_tokens, self.overlap)  # the command line's own checks
        except SpecError as e:
            raise ValueError(str(e)) from None
        return self

    def location(self, base_dir: Path) -> str:
        """The store URL the index lives in."""
        if self.out is None:
            assert self.store is not None
            return self.store
        return store_url_for(base_dir / self.out, self.store)

    def build(self, base_dir: Path, progress: IndexProgress | None = None) -> IndexReport:
        out = base_dir / self.out if self.out is not None else None
        store = open_store(self.location(base_dir))
        try:
            report = build_index(
                [base_dir / d for d in self.docs],
                store,
                model_id=self.model,
                model_options=self.model_options or None,
                chunking=ChunkOptions(self.chunk_tokens, self.overlap),
                read=ReadOptions(text=self.text, id=self.id, title=self.title),
                exclude=out,
                progress=progress,
            )
        finally:
            store.close()
        if out is not None and self.store is not None:
            write_pointer(out, self.store)
        return report
