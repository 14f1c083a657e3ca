"""The bundled small generative rungs against guessing, before and after calibration.

    python benchmarks/bench_small_llms.py [--test-size 150] [--sst2-size 200] [--no-cache]

Two data sets, each a ``rung compare`` run with the bundled generative rungs
(llamacpp:smollm2-135m-instruct, an instruct model asked through its chat template, and
llamacpp:gemma-3-270m, a base model asked in the few-shot completion format):

- the demo's split of Financial PhraseBank (all annotators agree; the spec ``rung demo``
  runs, 150 test sentences, 4 shots per label);
- SST-2's dev set (binary movie-review sentiment). Its train split is mostly phrases (median
  7 words) while dev holds whole sentences (median 19): the shots and the calibration examples
  are drawn from the training texts of 10 words or more, the way a user would pick examples
  like the texts the rung will see (a correction fitted on phrases cost SmolLM2 0.10 on dev).

Per rung it prints the accuracy as asked without any correction (``calibration: none``, the
label names as words) and as ``rung compare`` reports it by default (verbalizer and
calibration chosen on training examples), beside the majority-class and random baselines of
the same test set, and the ratio of each to the majority baseline. The goal: every rung well
above the majority class; on FPB both at 0.70 or more.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from rung.runs import RunResults

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
RUNGS = ["llamacpp:smollm2-135m-instruct", "llamacpp:gemma-3-270m"]


def fpb_spec(test_size: int) -> tuple[dict[str, Any], Path]:
    from rung.datasets import demo_spec

    spec, base = demo_spec(test_size=test_size, environ={})
    data = spec.model_dump(mode="json", exclude_none=True)
    data["models"] = RUNGS
    return data, base


def sentences_of(train: Path, out: Path, min_words: int = 10) -> Path:
    """SST-2's training texts of ``min_words`` words or more, as a TSV like the original."""
    lines = train.read_text(encoding="utf-8").splitlines()
    kept = [lines[0]] + [ln for ln in lines[1:] if len(ln.split("\t")[0].split()) >= min_words]
    out.write_text("\n".join(kept) + "\n", encoding="utf-8")
    return out


def sst2_spec(test_size: int, work: Path) -> tuple[dict[str, Any], Path]:
    sst2 = DATA / "sst2"
    source = {"text": "sentence", "label": "label", "label_map": {"0": "negative", "1": "positive"}}
    train = sentences_of(sst2 / "train.tsv", work / "sst2-train-sentences.tsv")
    return {
        "name": "SST-2 dev",
        "task": {
            "type": "classify",
            "data": {"path": str(train), **source},
            "test_data": {"path": str(sst2 / "dev.tsv"), **source},
            "labels": ["negative", "positive"],
            "train_size": 600,
            "test_size": test_size,
            "seed": 0,
            "prompt": {
                "shots": 4,
                "instructions": "You label the sentiment of sentences from movie reviews. "
                "Answer with one word: {labels}.",
            },
        },
        "models": RUNGS,
    }, sst2


def run(spec: dict[str, Any], base: Path, out: Path, use_cache: bool) -> RunResults:
    from rung.app import compare_spec
    from rung.runs import parse_spec

    spec = {**spec, "measure": {"load": None, "memory": False}}
    return compare_spec(parse_spec(spec, "benchmark spec"), base, out, use_cache=use_cache).results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--test-size", type=int, default=150, help="FPB test sentences")
    parser.add_argument("--sst2-size", type=int, default=200, help="SST-2 dev sentences")
    parser.add_argument("--no-cache", action="store_true", help="answer everything again")
    args = parser.parse_args()
    use_cache = not args.no_cache
    rows: list[tuple[str, str, str, str, str, str]] = []
    goals: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (spec, base) in (
            ("FPB all-agree (demo split)", fpb_spec(args.test_size)),
            ("SST-2 dev", sst2_spec(args.sst2_size, Path(tmp))),
        ):
            raw_spec = {**spec, "task": {**spec["task"], "calibration": {"method": "none"}}}
            raw_spec["task"]["calibration"]["choose_verbalizer"] = False
            raw = run(raw_spec, base, Path(tmp) / f"{name}-raw", use_cache)
            calibrated = run(spec, base, Path(tmp) / f"{name}-cal", use_cache)
            majority = next(b for b in calibrated.baselines if b.name == "majority class")
            top = majority.accuracy.value
            for b in calibrated.baselines:
                acc = b.accuracy
                rows.append((name, f"({b.name}: {b.rule})", "-", f"{acc.value:.3f}", "-", "-"))
            for before, after in zip(raw.rungs, calibrated.rungs, strict=True):
                cal = after.calibration
                how = f"{cal.method}, words {'/'.join(cal.verbalizer.values())}" if cal else "-"
                a, b = before.quality.accuracy, after.quality.accuracy
                rows.append(
                    (
                        name,
                        after.label,
                        f"{a.value:.3f} [{a.ci95[0]:.2f}-{a.ci95[1]:.2f}]",
                        f"{b.value:.3f} [{b.ci95[0]:.2f}-{b.ci95[1]:.2f}]",
                        f"{a.value / top:.2f} / {b.value / top:.2f}",
                        how,
                    )
                )
                above = b.ci95[0] > top
                goals.append(
                    f"{name}: {after.label} {'is' if above else 'is NOT'} clearly above the "
                    f"majority class ({b.value:.3f}, interval from {b.ci95[0]:.2f}, "
                    f"majority {top:.3f})"
                )
    headers = ("data", "rung", "raw accuracy", "calibrated", "÷ majority (raw / cal)", "chosen")
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    for r in [headers, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)))
    print()
    for line in goals:
        print(line)


if __name__ == "__main__":
    main()
