"""The generative tasks, each with the bundled generative rungs side by side on a small slice:
extract (CoNLL-2003 dev sentences, entity F1), summarize (DialogSum test dialogues, ROUGE
against the best of three references), translate (the French-English test fixture, BLEU and
chrF). Prints one table per task: the metrics with bootstrap 95% intervals, latency and output
tokens per second.

    python benchmarks/bench_tasks.py [--n 8] [--tasks extract,summarize,translate] [--no-cache]
        [--tagger 1000] [--tagger-epochs 3]

--tagger N adds the encoder rung of extract: minilm-l6 with a token-classification head tuned
on N training sentences and scored on the same test sentences as the generative rungs, and on
200 dev sentences (8 sentences hold too few entities to tell a tagger that works from one that
does not: F1 0.29 on 200 after 200 sentences × 2 epochs, 0.74 after 1,000 × 3).

Runs go through `rung compare`'s task runner and the response cache (a second run costs
nothing; --no-cache measures again). The slices are tiny, so the intervals are wide: read the
table for the shape of the trade-off, not for a ranking. The machine may be shared (the load
average is printed).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from rung.compare.tasks import load_task_spec, run_task
from rung.report.tasks import task_markdown

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("RUNG_SHARED_DATA", REPO.parent / "shared" / "data"))
RUNGS = ["llamacpp:smollm2-135m-instruct", "llamacpp:gemma-3-270m"]


def task_sections(n: int) -> dict[str, dict[str, Any]]:
    conll = DATA / "conll2003"
    return {
        "extract": {
            "type": "extract",
            "data": {"path": str(conll / "eng.train")},
            "test_data": {"path": str(conll / "eng.testa")},
            "splits": {"test_size": n, "train_size": 40},
            "prompt": {
                "instructions": (
                    "List the named entities in the sentence. Entity types: {types}.\n"
                    'Answer with a JSON array only, e.g. [{"text": "John Smith", "type": "PER"}].'
                ),
                "shots": 2,
                "max_tokens": 64,
            },
        },
        "summarize": {
            "type": "summarize",
            "data": {
                "path": str(DATA / "dialogsum" / "dialogsum.test.jsonl"),
                "text": "dialogue",
                "id": "fname",
                "references": ["summary1", "summary2", "summary3"],
            },
            "splits": {"test_size": n},
            "prompt": {
                "instructions": "Summarize the dialogue in one sentence.",
                "max_tokens": 48,
            },
        },
        "translate": {
            "type": "translate",
            "data": {
                "path": str(REPO / "tests" / "fixtures" / "translate" / "fr_en.jsonl"),
                "text": "source",
                "references": ["target"],
            },
            "source": "French",
            "target": "English",
            "splits": {"test_size": n},
            "prompt": {
                "instructions": (
                    "Translate the text from {source} to {target}. Answer with the translation only."
                ),
                "max_tokens": 40,
            },
        },
    }


def tagger_row(spec: Any, n_train: int, epochs: int) -> None:
    """The tuned encoder rung, scored on the generative rungs' test sentences and, as those are
    few, on 200 dev sentences too (an 8-sentence slice may hold two or three entities)."""
    from rung.tasks.extract import ExtractKind, ExtractTask
    from rung.tasks.text_metrics import entity_prf
    from rung.tune.encoder.tokens import train_token_tagger

    task = spec.task_spec()
    assert isinstance(task, ExtractTask)
    task = task.model_copy(
        update={"splits": task.splits.model_copy(update={"train_size": n_train})}
    )
    wide = task.model_copy(update={"splits": task.splits.model_copy(update={"test_size": 200})})
    kind = ExtractKind()
    started = time.perf_counter()
    train, test = kind.load_items(task, REPO)
    tagger = train_token_tagger("minilm-l6", train, epochs=epochs, seed=task.splits.seed)
    took = time.perf_counter() - started
    for items in (test, kind.load_items(wide, REPO)[1]):
        pred = tagger.predict([item.extra["tokens"] for item in items])
        metrics, _ = entity_prf([item.reference for item in items], pred)
        cells = ", ".join(
            f"{k} {m.value:.3f} [{m.ci95[0]:.3f}, {m.ci95[1]:.3f}]" for k, m in metrics.items()
        )
        print(
            f"encoder:minilm-l6 + token head ({len(train)} sentences, {epochs} epochs; "
            f"{len(items)} test sentences): {cells} (tuned in {took:.0f} s)"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=8, help="Test items per task.")
    parser.add_argument("--tasks", default="extract,summarize,translate")
    parser.add_argument("--no-cache", action="store_true")
    parser.add_argument("--tagger", type=int, default=0, help="Tune minilm-l6 on N sentences.")
    parser.add_argument("--tagger-epochs", type=int, default=3)
    args = parser.parse_args()
    sections = task_sections(args.n)
    print(
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; rungs: {', '.join(RUNGS)}"
    )
    for name in args.tasks.split(","):
        spec = load_task_spec(
            {"name": f"bench {name}", "task": sections[name], "models": RUNGS},
            f"bench {name}",
        )
        started = time.perf_counter()
        run = run_task(spec, REPO, use_cache=not args.no_cache)
        print()
        print(task_markdown(run.results).split("\n", 2)[2].strip())
        rates = ", ".join(
            f"{r.label}: {r.tokens.out_per_request * r.throughput_per_s:.1f} tok/s"
            for r in run.results.rungs
        )
        print(f"({time.perf_counter() - started:.0f} s; output {rates})")
        if name == "extract" and args.tagger:
            tagger_row(spec, args.tagger, args.tagger_epochs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
