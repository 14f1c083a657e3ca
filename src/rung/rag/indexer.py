"""``rung index``: documents in, an up-to-date index out.

1. Find the files under the DOCS arguments (hidden files and the index's own folder left out)
   and read every one; any bad file stops the build before anything is written.
2. Chunk them; compare each chunk's content hash with what the store holds.
3. Embed only the chunks that are new or changed.
4. In one ``store.writing()``: delete the chunks that are gone (edited files' old chunks and
   every chunk of a removed file), upsert the new ones, record the meta.

A source is a file's path relative to the DOCS argument it was found under, so the same folder
indexed from anywhere gives the same ids, and re-indexing it updates rather than duplicates.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from rung.errors import DataError
from rung.rag.chunking import Chunk, ChunkOptions, chunk_documents
from rung.rag.documents import Document, ReadOptions
from rung.rag.embedding import DEFAULT_MODEL, Embedder
from rung.rag.readers import READERS, read_path, supported
from rung.rag.stores import IndexMeta, VectorStore

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["IndexPlan", "IndexProgress", "IndexReport", "build_index", "find_files", "plan"]


class IndexProgress(Protocol):
    """What a display is told while an index is built."""

    def phase(self, name: str, total: int) -> None: ...

    def advance(self, n: int) -> None: ...


@dataclass
class IndexReport:
    store: str
    model_id: str
    files: int
    documents: int
    chunks: int
    embedded: int
    #: chunks written again with the vector they had (their text moved)
    reused: int
    unchanged: int
    deleted: int
    removed_sources: list[str]
    tokens: int = 0
    truncated: int = 0
    seconds: float = 0.0
    #: nothing had changed: the store was not written
    up_to_date: bool = False

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class IndexPlan:
    """What a build will do, before any embedding."""

    chunks: list[Chunk]
    to_embed: list[Chunk]
    #: chunks whose text is in the store already (it moved, or a neighbour changed its
    #: offsets): each with the id of a stored chunk whose vector it takes over
    to_reuse: list[tuple[Chunk, str]]
    #: ids of chunks gone from files that are still there (an edit made them fewer)
    stale: list[str]
    #: sources in the index whose files are gone, and how many chunks they had
    removed_sources: list[str]
    removed_chunks: int
    documents: int
    files: int


def find_files(paths: Sequence[Path], exclude: Path | None = None) -> list[tuple[Path, str]]:
    """(file, source) for every readable document under ``paths``."""
    found: list[tuple[Path, str]] = []
    skip = exclude.resolve() if exclude is not None else None
    for arg in paths:
        if not arg.exists():
            raise DataError(f"no such file or folder: {arg}; check the DOCS argument")
        if arg.is_file():
            if not supported(arg):
                raise DataError(
                    f"cannot index {arg}: unknown extension {arg.suffix or '(none)'!r}; rung "
                    f"reads {', '.join(sorted(READERS))}"
                )
            found.append((arg, arg.name))
            continue
        inside: list[tuple[Path, str]] = []
        for path in sorted(arg.rglob("*")):
            rel = path.relative_to(arg)
            if any(part.startswith(".") for part in rel.parts) or not path.is_file():
                continue
            if skip is not None and path.resolve().is_relative_to(skip):
                continue
            if supported(path):
                inside.append((path, rel.as_posix()))
        if not inside:
            raise DataError(
                f"{arg} holds no documents rung reads ({', '.join(sorted(READERS))}); point "
                "DOCS at your files"
            )
        found += inside
    sources = [s for _, s in found]
    dupes = sorted({s for s in sources if sources.count(s) > 1})
    if dupes:
        raise DataError(
            f"two DOCS arguments hold a file named {dupes[0]!r}; index their parent folder "
            "instead, so that each source has its own path"
        )
    return found


def plan(
    files: Sequence[tuple[Path, str]],
    store: VectorStore,
    chunking: ChunkOptions,
    read: ReadOptions,
    progress: IndexProgress | None = None,
) -> IndexPlan:
    documents: list[Document] = []
    if progress is not None:
        progress.phase("reading", len(files))
    for path, source in files:
        documents += read_path(path, source, read)
        if progress is not None:
            progress.advance(1)
    chunks = chunk_documents(documents, chunking)
    if not chunks:
        raise DataError("found no text to index in DOCS; check the files")
    old = store.hashes()
    new_ids = {c.id for c in chunks}
    holder = {stored.hash: cid for cid, stored in old.items()}  # a chunk id per known text
    to_embed: list[Chunk] = []
    to_reuse: list[tuple[Chunk, str]] = []
    for c in chunks:
        stored = old.get(c.id)
        if stored is not None and (stored.hash, stored.start, stored.end) == (
            c.hash,
            c.start,
            c.end,
        ):
            continue  # unchanged
        if stored is not None and stored.hash == c.hash:
            to_reuse.append((c, c.id))  # same text, new offsets
        elif c.hash in holder:
            to_reuse.append((c, holder[c.hash]))
        else:
            to_embed.append(c)
    removed = sorted({s.source for s in old.values()} - {c.source for c in chunks})
    gone = set(removed)
    stale = [cid for cid, s in old.items() if cid not in new_ids and s.source not in gone]
    removed_chunks = sum(s.source in gone for s in old.values())
    return IndexPlan(
        chunks, to_embed, to_reuse, stale, removed, removed_chunks, len(documents), len(files)
    )


def build_index(
    paths: Sequence[Path],
    store: VectorStore,
    *,
    model_id: str | None = None,
    model_options: dict[str, Any] | None = None,
    chunking: ChunkOptions | None = None,
    read: ReadOptions | None = None,
    exclude: Path | None = None,
    progress: IndexProgress | None = None,
    embedder: Embedder | None = None,
) -> IndexReport:
    """Index ``paths`` into ``store``, embedding only what changed since the last build.
    ``model_id`` None keeps the model the index was built with (the bundled MiniLM for a new
    one). An ``embedder`` already loaded (a server's, a test's) is used and left open;
    otherwise one is made and closed here."""
    from rung import __version__

    started = time.perf_counter()
    chunking = chunking or ChunkOptions()
    existing = store.read_meta()
    fallback = embedder.model_id if embedder is not None else DEFAULT_MODEL
    model_id = model_id or (existing.model_id if existing else fallback)
    if embedder is not None:
        model_options = embedder.options
    elif model_options is None:
        model_options = existing.model_options if existing and existing.model_id == model_id else {}
    files = find_files(paths, exclude)
    own_embedder = embedder is None
    if embedder is None:
        embedder = Embedder(model_id, model_options)
    elif embedder.model_id != model_id:
        raise DataError(
            f"the embedder is {embedder.model_id} but the index wants {model_id}; pass one of "
            "the index's model"
        )
    fingerprint = embedder.fingerprint()
    if existing is not None and (
        existing.model_id != model_id or existing.fingerprint != fingerprint
    ):
        what = (
            f"another embedding model ({existing.model_id})"
            if existing.model_id != model_id
            else f"{model_id} as it was before its files or options changed"
        )
        raise DataError(
            f"{store_name(store)} was built with {what}; vectors of two models cannot be mixed: "
            f"index with --model {existing.model_id}, or write a new index (another --out)"
        )
    work = plan(files, store, chunking, read or ReadOptions(), progress)
    # vectors kept from the store; a chunk whose vector is gone meanwhile is embedded after all
    kept = store.vectors(sorted({held for _, held in work.to_reuse})) if work.to_reuse else {}
    reused = [(c, kept[held]) for c, held in work.to_reuse if held in kept]
    to_embed = work.to_embed + [c for c, held in work.to_reuse if held not in kept]
    report = IndexReport(
        store=store_name(store),
        model_id=model_id,
        files=work.files,
        documents=work.documents,
        chunks=len(work.chunks),
        embedded=len(to_embed),
        reused=len(reused),
        unchanged=len(work.chunks) - len(to_embed) - len(reused),
        deleted=len(work.stale) + work.removed_chunks,
        removed_sources=work.removed_sources,
    )
    same_chunking = existing is not None and (existing.chunk_tokens, existing.overlap) == (
        chunking.tokens,
        chunking.overlap,
    )
    if not to_embed and not reused and not report.deleted and same_chunking:
        report.up_to_date = True
        report.seconds = time.perf_counter() - started
        return report
    tokens_before, truncated_before = embedder.stats.tokens, embedder.stats.truncated
    try:
        vectors = _embed(embedder, to_embed, progress) if to_embed else None
    finally:
        if own_embedder:
            embedder.close()
    if vectors is not None:
        dimension = int(vectors.shape[1])
    elif existing is not None:
        dimension = existing.dimension
    else:  # unreachable: a new index has nothing to reuse
        raise AssertionError("nothing embedded for a new index")
    chunks_out = to_embed + [c for c, _ in reused]
    vectors_out = _stack(vectors, [v for _, v in reused], dimension)
    meta = IndexMeta(
        model_id=model_id,
        fingerprint=fingerprint,
        dimension=dimension,
        chunk_tokens=chunking.tokens,
        overlap=chunking.overlap,
        model_options=dict(model_options),
        rung_version=__version__,
        updated_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    if progress is not None:
        progress.phase("writing", len(chunks_out) + report.deleted)
    with store.writing(meta):
        store.delete_sources(work.removed_sources)
        store.delete(work.stale)
        if progress is not None:
            progress.advance(report.deleted)
        store.upsert(chunks_out, vectors_out)
        if progress is not None:
            progress.advance(len(chunks_out))
    report.tokens = embedder.stats.tokens - tokens_before
    report.truncated = embedder.stats.truncated - truncated_before
    report.seconds = time.perf_counter() - started
    return report


def _embed(
    embedder: Embedder, chunks: Sequence[Chunk], progress: IndexProgress | None
) -> NDArray[np.float32]:
    if progress is not None:
        progress.phase("loading", 1)
    embedder.load()
    if progress is not None:
        progress.advance(1)
        progress.phase("embedding", len(chunks))
    return embedder.embed(
        [c.embed_text for c in chunks],
        on_batch=progress.advance if progress is not None else None,
    )


def _stack(
    embedded: NDArray[np.float32] | None, kept: list[NDArray[np.float32]], dimension: int
) -> NDArray[np.float32]:
    """The new vectors, then the kept ones, in the order of ``to_embed + reused``."""
    import numpy as np

    parts: list[NDArray[np.float32]] = []
    if embedded is not None:
        parts.append(embedded)
    if kept:
        parts.append(np.stack(kept).astype(np.float32))
    if not parts:
        return np.zeros((0, dimension), dtype=np.float32)
    return np.concatenate(parts, axis=0)


def store_name(store: VectorStore) -> str:
    from rung.rag.stores import redact

    return redact(store.url)
