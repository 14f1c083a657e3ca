"""rung's backends against the libraries they wrap, side by side in one run.

    python benchmarks/bench_backends.py

Goal: rung keeps at least 97% of llama-cpp-python's generation tokens/s and of
sentence-transformers' sentences/s on the same model, input and settings. The machine is
noisy: read the ratios, not the absolute figures.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import backend_encoder
import backend_llamacpp

GOAL = 0.97


def main() -> int:
    rows = [
        ("llamacpp generation tokens/s", backend_llamacpp.run()),
        ("encoder classify sentences/s", backend_encoder.run()),
    ]
    print(f"\n{'what':34} {'rung':>10} {'direct':>10} {'ratio':>7}  goal >= {GOAL}")
    ok = True
    for name, figures in rows:
        ratio = figures["ratio"]
        ok &= ratio >= GOAL
        print(
            f"{name:34} {figures['rung']:10.1f} {figures['direct']:10.1f} {ratio:7.3f}  {'ok' if ratio >= GOAL else 'BELOW GOAL'}"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
