"""Fine-tuned encoder vs the frozen encoder (and the small bundled LLM), side by side in one run.

    python benchmarks/bench_tune.py                  # both data sets
    python benchmarks/bench_tune.py --only fpb       # financial phrasebank only
    python benchmarks/bench_tune.py --only banking77 --epochs 8 --lr 2e-4 --threads 2

financial phrasebank (AllAgree): 20% held out, stratified, seed 0 - the split of a compare spec
with ``test_size: 0.2, seed: 0``. Goal: fine-tuned all-MiniLM-L6-v2 >= 0.95 accuracy in under 10
minutes of training on 2 CPU cores; the frozen encoder + logistic regression (encoder:minilm-l6)
gets about 0.89 there, SmolLM2-135M with 2 shots far less.

banking77: the official test set (3,080), 77 intents. Goal: >= 0.90 (fine-tuned BERT-base models
publish 0.93-0.94).

The tuned folder is scored through ``rung compare`` as ``encoder:<folder>`` next to the other
rungs (same test split, same harness), and its figure is checked against the one rung.json
recorded. Training time is wall time on a machine that may be shared: read it as an order of
magnitude. Exit status 1 when a goal is missed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("RUNG_SHARED_DATA", REPO.parent / "shared" / "data"))

GOALS = {"fpb": 0.95, "banking77": 0.90}
FPB_TIME_GOAL_S = 600


def _task(dataset: str) -> dict[str, Any]:
    if dataset == "fpb":
        return {
            "type": "classify",
            "data": {"path": str(DATA / "financial_phrasebank" / "Sentences_AllAgree.txt")},
            "labels": ["negative", "neutral", "positive"],
            "test_size": 0.2,
            "seed": 0,
            "prompt": {
                "shots": 2,
                "instructions": (
                    "You label the sentiment of sentences from financial news, from the point "
                    "of view of an investor in the company. Answer with one word: {labels}."
                ),
            },
        }
    folder = DATA / "banking77"
    return {
        "type": "classify",
        "data": {"path": str(folder / "train.csv"), "label": "category"},
        "test_data": {"path": str(folder / "test.csv"), "label": "category"},
        "seed": 0,
    }


class Bar:
    """A one-line progress report on stderr (a benchmark log, not a terminal UI)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.total = 0
        self.done_steps = 0
        self.loss = 0.0

    def start(self, total_steps: int) -> None:
        self.total = total_steps

    def step(self, loss: float) -> None:
        self.done_steps += 1
        self.loss = loss if self.done_steps == 1 else 0.9 * self.loss + 0.1 * loss
        if self.done_steps % 20 == 0:
            print(
                f"  {self.name}: step {self.done_steps}/{self.total} loss {self.loss:.3f}",
                file=sys.stderr,
                flush=True,
            )

    def evaluated(self, epoch: float, score: float) -> None:
        print(f"  {self.name}: epoch {epoch:g} validation {score:.4f}", file=sys.stderr, flush=True)

    def done(self) -> None:
        pass


def run(dataset: str, args: argparse.Namespace, work: Path) -> tuple[list[list[str]], bool]:
    from rung.app import compare_spec
    from rung.export.folder import file_sha256
    from rung.runs import parse_spec
    from rung.tasks.classify import ClassifyTask, load_task_data
    from rung.tune import TuneOptions, tune_classifier

    task_dict = _task(dataset)
    task = ClassifyTask.model_validate(task_dict)
    data = load_task_data(task, REPO)
    overrides = {
        key: value
        for key, value in {
            "epochs": args.epochs,
            "learning_rate": args.lr,
            "batch_size": args.batch_size,
            "max_seq_length": args.max_seq_length,
            "threads": args.threads,
            "patience": args.patience,
            "pooling": args.pooling,
        }.items()
        if value is not None
    }
    options = TuneOptions(**overrides)
    out = work / f"{dataset}-minilm-l6"
    print(
        f"{dataset}: tuning on {len(data.train)} examples, testing on {len(data.test)} "
        f"({options.model_dump(exclude_defaults=True) or 'default options'})",
        file=sys.stderr,
    )
    result = tune_classifier(
        "encoder:minilm-l6",
        [ex.text for ex in data.train],
        [ex.label for ex in data.train],
        data.labels,
        out,
        options,
        test_texts=[ex.text for ex in data.test],
        test_labels=[ex.label for ex in data.test],
        data_info={
            "path": task_dict["data"]["path"],
            "sha256": file_sha256(Path(task_dict["data"]["path"])),
        },
        progress=Bar(dataset),
        force=True,
    )
    models: list[dict[str, Any]] = [
        {"id": f"encoder:{out}", "label": "minilm-l6 fine-tuned"},
        {"id": "encoder:minilm-l6", "label": "minilm-l6 frozen + logreg"},
    ]
    if dataset == "fpb" and not args.no_llm:
        models.append({"id": "llamacpp:smollm2-135m-instruct", "label": "smollm2-135m 2-shot"})
    spec = parse_spec(
        {
            "name": f"bench_tune {dataset}",
            "task": task_dict,
            "models": models,
            "measure": {"load": None, "memory": False},
        }
    )
    print(f"{dataset}: scoring {len(models)} rungs with rung compare", file=sys.stderr)
    compared = compare_spec(spec, REPO, work / f"{dataset}-run", use_cache=False)
    goal = GOALS[dataset]
    rows: list[list[str]] = []
    ok = True
    for r in compared.results.rungs:
        acc = r.quality.accuracy
        f1 = r.quality.macro_f1
        tuned = r.label == "minilm-l6 fine-tuned"
        seconds = result.train_seconds if tuned else r.fit_s
        met = ""
        if tuned:
            met = "met" if acc.value >= goal else "NOT MET"
            ok &= acc.value >= goal
            if dataset == "fpb":
                in_time = result.train_seconds < FPB_TIME_GOAL_S
                met += f", {'under' if in_time else 'OVER'} 10 min"
                ok &= in_time
            recorded = result.test["accuracy"] if result.test else None
            if recorded is None or abs(recorded - acc.value) > 1.5 / len(data.test):
                met += f" (rung.json says {recorded})"
        rows.append(
            [
                dataset,
                r.label,
                f"{acc.value:.4f} [{acc.ci95[0]:.3f}-{acc.ci95[1]:.3f}]",
                f"{f1.value:.4f} [{f1.ci95[0]:.3f}-{f1.ci95[1]:.3f}]",
                "-" if seconds is None else f"{seconds:.0f}",
                f">= {goal} {met}" if tuned else "",
            ]
        )
    print(
        f"{dataset}: best epoch {result.best_epoch:g}, validation accuracy "
        f"{result.validation['accuracy']:.4f}, folder {result.out}",
        file=sys.stderr,
    )
    return rows, ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=sorted(GOALS), help="Run one data set only.")
    parser.add_argument("--no-llm", action="store_true", help="Skip the SmolLM2 rung on fpb.")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--max-seq-length", type=int)
    parser.add_argument("--patience", type=int)
    parser.add_argument("--pooling", choices=["mean", "cls"])
    parser.add_argument("--threads", type=int, help="Torch CPU threads (default: torch's).")
    parser.add_argument("--work", type=Path, help="Folder for the models and runs (default: temp).")
    args = parser.parse_args()
    datasets = [args.only] if args.only else ["fpb", "banking77"]
    work = args.work or Path(tempfile.mkdtemp(prefix="rung-bench-tune-"))
    work.mkdir(parents=True, exist_ok=True)
    rows: list[list[str]] = []
    ok = True
    for dataset in datasets:
        found, met = run(dataset, args, work)
        rows.extend(found)
        ok &= met
    header = ["data", "rung", "accuracy [95% CI]", "macro-F1 [95% CI]", "train s", "goal"]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    print()
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)))
    print(
        f"\nmodels and runs in {work}; cpu threads: {os.cpu_count()} (shared machine: times vary)"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
