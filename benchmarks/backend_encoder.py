"""rung's encoder backend against sentence-transformers called directly, on the same work.

    python benchmarks/backend_encoder.py [--n 2000] [--batch-size 32] [--repeats 3] [--whole]

Both sides embed the same financial phrasebank sentences with all-MiniLM-L6-v2 in batches of
``batch_size`` and score them with the same trained logistic-regression head:

- rung:   ``await model.classify(batch)`` per batch (embedding, head, Prediction objects);
- direct: ``SentenceTransformer.encode(batch, batch_size=...)`` + ``head.predict_proba`` per batch.

The two sides take turns batch by batch (rung, direct, then direct, rung on the next batch), so a
burst of load from elsewhere on the machine hits both alike. "best" sums each batch's fastest of
the repeats; "median" is the median whole pass. The ratio is rung/direct (goal >= 0.97).
``--whole`` adds a second pair that hands all ``n`` texts over in one call, where
sentence-transformers sorts them by length across the whole set and pads less.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rung.models.base import ClassifyRequest
from rung.models.bundled import minilm_l6_dir
from rung.models.encoder import EncoderModel, EncoderOptions
from rung.tasks.data import read_examples

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TRAIN = 300
GOAL = 0.97


def _sentences(n: int) -> tuple[list[str], list[str], list[str]]:
    """(train texts, train labels, n benchmark texts), disjoint, from the 50%-agreement file
    (4,846 sentences, the largest of the phrasebank's files)."""
    examples = read_examples(DATA / "financial_phrasebank" / "Sentences_50Agree.txt")
    unique = list({ex.text: ex for ex in examples}.values())
    random.Random(0).shuffle(unique)
    if n + TRAIN > len(unique):
        raise SystemExit(f"--n at most {len(unique) - TRAIN}: the file has {len(unique)} sentences")
    train, bench = unique[:TRAIN], unique[TRAIN : TRAIN + n]
    return [ex.text for ex in train], [ex.label for ex in train], [ex.text for ex in bench]


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run(
    n: int = 2000, batch_size: int = 32, repeats: int = 3, whole: bool = False
) -> dict[str, Any]:
    from sentence_transformers import SentenceTransformer

    train_texts, train_labels, texts = _sentences(n)
    model = EncoderModel("minilm-l6", EncoderOptions(batch_size=batch_size))
    model.load()
    labels = tuple(sorted(set(train_labels)))
    model.fit(train_texts, train_labels, labels)
    head = model._head
    assert head is not None
    direct_st = SentenceTransformer(str(minilm_l6_dir()), device="cpu", local_files_only=True)

    requests = [ClassifyRequest(text=t, labels=labels, messages=()) for t in texts]
    req_batches = [requests[i : i + batch_size] for i in range(0, n, batch_size)]
    text_batches = [texts[i : i + batch_size] for i in range(0, n, batch_size)]

    def direct_batch(batch: list[str]) -> None:
        emb = direct_st.encode(batch, batch_size=batch_size, normalize_embeddings=True)
        head.predict_proba(emb)

    async def sweep(flip: bool) -> tuple[list[float], list[float]]:
        """One pass over all batches, the two sides taking turns on each batch: a burst of
        load from elsewhere on the machine then lands on both."""
        rung_s, direct_s = [], []
        for reqs, batch in zip(req_batches, text_batches, strict=True):
            for side in ("direct", "rung") if flip else ("rung", "direct"):
                start = time.perf_counter()
                if side == "rung":
                    await model.classify(reqs)
                    rung_s.append(time.perf_counter() - start)
                else:
                    direct_batch(batch)
                    direct_s.append(time.perf_counter() - start)
            flip = not flip
        return rung_s, direct_s

    # warm both paths (worker thread, allocator) before timing
    asyncio.run(model.classify(req_batches[0]))
    direct_batch(text_batches[0])

    sweeps = [asyncio.run(sweep(flip=r % 2 == 1)) for r in range(repeats)]
    result: dict[str, Any] = {"n": n, "batch_size": batch_size, "repeats": repeats}
    for i, name in enumerate(("rung", "direct")):
        per_batch = list(zip(*(s[i] for s in sweeps), strict=True))
        # best: each batch at its fastest repeat; median: the median whole pass
        result[name] = n / sum(min(times) for times in per_batch)
        result[f"{name}_median"] = n / statistics.median(sum(s[i]) for s in sweeps)

    if whole:

        def direct_whole() -> None:
            emb = direct_st.encode(texts, batch_size=batch_size, normalize_embeddings=True)
            head.predict_proba(emb)

        sides: dict[str, Callable[[], Any]] = {
            "rung_whole": lambda: asyncio.run(model.classify(requests)),
            "direct_whole": direct_whole,
        }
        seconds: dict[str, list[float]] = {name: [] for name in sides}
        order = list(sides)
        for r in range(repeats):
            for name in order if r % 2 == 0 else order[::-1]:
                seconds[name].append(_timed(sides[name]))
        for name, runs in seconds.items():
            result[name] = n / min(runs)
            result[f"{name}_median"] = n / statistics.median(runs)

    result["ratio"] = result["rung"] / result["direct"]
    result["ratio_median"] = result["rung_median"] / result["direct_median"]
    if whole:
        result["ratio_whole"] = result["rung_whole"] / result["direct_whole"]
    model.close()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--whole", action="store_true", help="also time one call over all texts")
    args = parser.parse_args()
    r = run(args.n, args.batch_size, args.repeats, args.whole)
    print(f"\n{r['n']} sentences, batches of {r['batch_size']}, {r['repeats']} interleaved repeats")
    print(f"{'sentences/s':24} {'best':>9} {'median':>9}")
    for name in ("rung", "direct", "rung_whole", "direct_whole"):
        if name in r:
            print(f"{name:24} {r[name]:9.1f} {r[name + '_median']:9.1f}")
    verdict = "ok" if r["ratio"] >= GOAL else "BELOW GOAL"
    print(
        f"ratio rung/direct: {r['ratio']:.3f} best, {r['ratio_median']:.3f} median "
        f"(goal >= {GOAL}: {verdict})"
    )
    if "ratio_whole" in r:
        print(f"ratio rung/direct, one call over all texts: {r['ratio_whole']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
