"""Generation tokens/s: rung's llamacpp backend against llama-cpp-python called directly.

    python benchmarks/backend_llamacpp.py [--tokens 128] [--repeats 3]

Both sides load the bundled SmolLM2-135M GGUF with the same context and threads, get the same
chat messages (a request for a long story, so that both run to max_tokens) and decode greedily
(temperature 0, no repetition penalty). Runs alternate, rung then direct, so a change in the
machine's load hits both; after one untimed warm-up each, the median of the timed runs is
reported, and rung/direct. Goal: a ratio of at least 0.97.

One thread per side by default: with as many threads as cores, llama.cpp's threads wait for
each other at every layer, and any other work on the machine (a test run, another benchmark)
stalls them for whole scheduler ticks, which swamps the difference being measured.

Each side runs in its own process, as it would in use: llama.cpp's CPU backend uses OpenMP,
and two OpenMP thread teams in one process (rung's llama thread and this script's main thread)
slow each other down by about 40% on a small machine, which would measure the benchmark, not
rung.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from typing import Any

MODEL = "smollm2-135m-instruct"
N_CTX = 2048
SYSTEM = "You are a storyteller who writes long, detailed stories."
USER = "Write a long story about a dragon who learns to cook. Make it at least 500 words."


def _worker(side: str, n_tokens: int, threads: int) -> None:
    """Load the model, then generate once per line read from stdin and print
    ``tokens seconds`` for each run."""
    from rung.models import registry
    from rung.models.base import ChatMessage, GenerateRequest, run_sync
    from rung.models.llamacpp import open_llama

    model = registry.create(f"llamacpp:{MODEL}", {"n_ctx": N_CTX, "n_threads": threads})
    model.check()
    if side == "rung":
        model.load()
        request = GenerateRequest(
            messages=(ChatMessage("system", SYSTEM), ChatMessage("user", USER)),
            max_tokens=n_tokens,
            temperature=0.0,
        )

        def once() -> int:
            return run_sync(model.generate(request)).tokens_out

    else:
        direct = open_llama(
            str(model.info().path),
            n_ctx=N_CTX,
            n_threads=threads,
            n_threads_batch=threads,
            seed=0,
            verbose=False,
        )
        messages: Any = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}]

        def once() -> int:
            out: Any = direct.create_chat_completion(
                messages=messages,
                max_tokens=n_tokens,
                temperature=0.0,
                repeat_penalty=1.0,
                seed=0,
            )
            return int(out["usage"]["completion_tokens"])

    print("ready", flush=True)
    for _ in sys.stdin:
        start = time.perf_counter()
        tokens = once()
        print(tokens, time.perf_counter() - start, flush=True)


class _Side:
    def __init__(self, side: str, n_tokens: int, threads: int) -> None:
        command = [sys.executable, __file__, "--worker", side]
        self.proc = subprocess.Popen(
            [*command, "--tokens", str(n_tokens), "--threads", str(threads)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._expect("ready")

    def _expect(self, word: str) -> None:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line.strip() != word:
            raise RuntimeError(f"benchmark worker said {line!r} instead of {word!r}")

    def once(self) -> tuple[int, float]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        tokens, seconds = self.proc.stdout.readline().split()
        return int(tokens), float(seconds)

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def run(n_tokens: int = 128, repeats: int = 3, threads: int = 1) -> dict[str, Any]:
    """Median tokens/s of each side and their ratio (rung / direct)."""
    sides = {name: _Side(name, n_tokens, threads) for name in ("rung", "direct")}
    try:
        for side in sides.values():
            side.once()  # warm-up: page in the weights, fill the prompt cache
        rates: dict[str, list[float]] = {name: [] for name in sides}
        counts: set[int] = set()
        for _ in range(repeats):
            for name, side in sides.items():
                tokens, seconds = side.once()
                counts.add(tokens)
                rates[name].append(tokens / seconds)
    finally:
        for side in sides.values():
            side.close()
    rung_rate = statistics.median(rates["rung"])
    direct_rate = statistics.median(rates["direct"])
    return {
        "rung": rung_rate,
        "direct": direct_rate,
        "ratio": rung_rate / direct_rate,
        "tokens": sorted(counts),
        "threads": threads,
        "runs": rates,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tokens", type=int, default=128, help="tokens generated per run")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per side")
    parser.add_argument("--worker", choices=["rung", "direct"], help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp threads per side")
    args = parser.parse_args()
    if args.worker:
        _worker(args.worker, args.tokens, args.threads)
        return
    figures = run(args.tokens, args.repeats, args.threads)
    print(f"model {MODEL}, {figures['threads']} threads, tokens per run {figures['tokens']}")
    for side in ("rung", "direct"):
        runs = ", ".join(f"{r:.1f}" for r in figures["runs"][side])
        print(f"{side:7} {figures[side]:7.1f} tokens/s (median of {runs})")
    print(f"ratio   {figures['ratio']:.3f} (goal >= 0.97)")


if __name__ == "__main__":
    main()
