"""Retrieval for grounded answers: documents into chunks, chunks into vectors in a store, and
questions back into the chunks that answer them.

    readers/     .md .txt .html .pdf .jsonl .csv .json into Documents
    chunking     token windows with overlap, heading paths, offsets, ids, content hashes
    embedding    any rung that can embed, through the backend contract
    stores/      the VectorStore contract, chosen by URL: sqlite (default), postgresql, weaviate
    indexer      `rung index`: embeds only what changed, writes all or nothing
    search       the Retriever: an index and its own embedding model
    metrics      recall@k, MRR, nDCG@k with bootstrap intervals
"""

from __future__ import annotations

from rung.rag.chunking import Chunk, ChunkOptions, chunk_document, chunk_documents
from rung.rag.documents import Document, Heading, ReadOptions
from rung.rag.embedding import DEFAULT_MODEL, Embedder
from rung.rag.indexer import IndexProgress, IndexReport, build_index, find_files
from rung.rag.metrics import METRICS, evaluate, mrr_at_k, ndcg_at_k, recall_at_k, unique
from rung.rag.readers import read_path
from rung.rag.search import MODES, Mode, Retriever, index_location, store_url_for, write_pointer
from rung.rag.stores import (
    Hit,
    IndexMeta,
    SearchFilter,
    StoreStats,
    VectorStore,
    open_store,
    rrf,
)

__all__ = [
    "DEFAULT_MODEL",
    "METRICS",
    "MODES",
    "Chunk",
    "ChunkOptions",
    "Document",
    "Embedder",
    "Heading",
    "Hit",
    "IndexMeta",
    "IndexProgress",
    "IndexReport",
    "Mode",
    "ReadOptions",
    "Retriever",
    "SearchFilter",
    "StoreStats",
    "VectorStore",
    "build_index",
    "chunk_document",
    "chunk_documents",
    "evaluate",
    "find_files",
    "index_location",
    "mrr_at_k",
    "ndcg_at_k",
    "open_store",
    "read_path",
    "recall_at_k",
    "rrf",
    "store_url_for",
    "unique",
    "write_pointer",
]
