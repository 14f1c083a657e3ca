"""The SLM-first cascade on the financial phrasebank with the bundled rungs.

    python benchmarks/bench_cascade.py [--run RUN_DIR] [--test-size 300] [--target 0.99]

Runs ``rung compare`` on the financial phrasebank (AllAgree, from ../shared/data) with the
bundled rungs (encoder:minilm-l6, llamacpp:gemma-3-270m, llamacpp:smollm2-135m-instruct), or
reads a run folder given with --run; then calibrates a cascade at ``target`` × the accuracy of
the most accurate rung, the rungs taken cheapest first, and prints:

- the share of requests the smallest (cheapest) rung answers;
- the cascade's accuracy with its 95% interval, against the top rung's;
- its cost per 1,000 requests against "everything to the top rung" and "everything to the
  largest (most expensive) rung";
- the same cascade on a held-out 30% of the examples (thresholds fitted on the other 70%),
  since thresholds chosen on the examples they are scored on flatter themselves.

Costs are the compare run's: machine time at the cpu-server profile's hourly price divided by
each rung's measured throughput (one request at a time; no load test is run here).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from rung.route import Calibration, calibrate, load_run
from rung.route.simulate import Evaluation
from rung.tasks.metrics import Estimate

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "financial_phrasebank" / "Sentences_AllAgree.txt"
RUNGS = ["encoder:minilm-l6", "llamacpp:gemma-3-270m", "llamacpp:smollm2-135m-instruct"]


def run_compare(out: Path, test_size: int, use_cache: bool) -> Path:
    from rung.app import compare_spec
    from rung.runs import parse_spec

    if not DATA.is_file():
        raise SystemExit(f"the financial phrasebank is missing: expected {DATA}")
    spec = parse_spec(
        {
            "name": "cascade benchmark: financial phrasebank (AllAgree)",
            "task": {
                "type": "classify",
                "data": {"path": str(DATA)},
                "labels": ["negative", "neutral", "positive"],
                "train_size": 600,
                "test_size": test_size,
                "seed": 0,
                "prompt": {
                    "shots": 2,
                    "instructions": (
                        "You label the sentiment of sentences from financial news, from the "
                        "point of view of an investor in the company. Answer with one word: "
                        "{labels}."
                    ),
                },
            },
            "models": RUNGS,
            "measure": {"load": None, "memory": False},
        }
    )
    started = time.perf_counter()
    compare_spec(spec, DATA.parent, out, use_cache=use_cache)
    print(
        f"compare: {test_size} examples × {len(RUNGS)} rungs in {time.perf_counter() - started:.0f} s"
    )
    return out


def _ci(e: Estimate) -> str:
    return f"{e.value:.3f} [{e.ci95[0]:.3f}, {e.ci95[1]:.3f}]"


def report(label: str, ev: Evaluation, smallest: str, largest_cost: float) -> None:
    cost = ev.cost_per_request
    print(f"\n{label} (n={ev.n})")
    print(f"  cascade: {ev.policy.describe()}")
    for s in ev.shares:
        print(
            f"  {s.rung:34} answers {s.answered.value:6.1%} "
            f"[{s.answered.ci95[0]:.1%}, {s.answered.ci95[1]:.1%}]"
        )
    print(f"  share answered by the smallest rung ({smallest}): {ev.share_of(smallest):.1%}")
    print(
        f"  accuracy: cascade {_ci(ev.accuracy)}; {ev.reference} alone {_ci(ev.reference_accuracy)}"
    )
    print(
        f"  cost per 1k requests: cascade ${cost.value * 1000:.5f} "
        f"[{cost.ci95[0] * 1000:.5f}, {cost.ci95[1] * 1000:.5f}]; "
        f"all to the top rung ${ev.reference_cost_per_request * 1000:.5f} "
        f"(saving {ev.saving or 0:+.1%}); all to the largest rung ${largest_cost * 1000:.5f} "
        f"(saving {1 - cost.value / largest_cost:+.1%})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, help="Use this compare run folder instead.")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-cascade"))
    parser.add_argument("--test-size", type=int, default=300)
    parser.add_argument("--target", type=float, default=0.99)
    parser.add_argument("--no-cache", action="store_true")
    args = parser.parse_args()

    run_dir = args.run or run_compare(args.out, args.test_size, not args.no_cache)
    table = load_run(run_dir)
    cal: Calibration = calibrate(table, args.target)
    held = calibrate(table, args.target, holdout=0.3)
    costs = {r.label: r.cost_usd_per_1k or 0.0 for r in table.rungs}
    largest = max(costs, key=lambda r: costs[r])
    print(f"\nrun: {run_dir} ({table.n} examples)")
    print("rungs, cheapest first:")
    for name in cal.order:
        print(f"  {name:34} accuracy {table.accuracy(name):.3f}  ${costs[name]:.5f} per 1k")
    print(f"top (most accurate) rung: {cal.top}; target {cal.target:g} × {cal.top_accuracy:.3f}")
    smallest = cal.order[0]
    report("calibrated and scored on all examples", cal.chosen, smallest, costs[largest] / 1000)
    assert held.holdout is not None
    report(
        "calibrated on 70%, scored on the held-out 30%",
        held.holdout,
        smallest,
        costs[largest] / 1000,
    )
    print("\ncost-quality frontier (all examples):")
    for p in cal.curve:
        shares = ", ".join(f"{s:.0%}" for s in p.shares)
        print(
            f"  ${p.cost_per_request * 1000:.5f}  accuracy {p.accuracy:.3f}  {p.policy.describe()}  [{shares}]"
        )
    for note in cal.notes:
        print(f"note: {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
