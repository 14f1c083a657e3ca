"""llama.cpp's weight repacking on and off: prompt and generation tokens/s of the bundled GGUFs.

    python benchmarks/bench_extra_buffers.py [--repeats 3] [--threads 1]

``extra_buffers: auto`` (the llamacpp backend's default) turns llama.cpp's extra buffer types
off on a CPU that reports AMX, where its AMX kernels crash, and keeps them on elsewhere. This
measures what "on" buys where it is safe: for each bundled model, one process loads it with
repacking on and one with it off (the setting is fixed at load), and runs alternate between
them so that a change in the machine's load hits both. Per run: a fresh evaluation of a
~400-token prompt (what classification costs) and 64 greedy tokens after a short prompt (what
generation costs). Reported: the median of the timed runs after one warm-up, and on/off.

On a CPU with AMX only "off" is measured: "on" would crash the process.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from typing import Any

MODELS = ("smollm2-135m-instruct", "gemma-3-270m")
GENERATE = 64
PROMPT = (
    "Classify the sentiment of sentences from financial news as negative, neutral or positive. "
    "Operating profit rose to EUR 13.1 mn from EUR 8.7 mn in the corresponding period in 2007. "
) * 12


def _worker(name: str, setting: str, threads: int) -> None:
    from rung.models import registry
    from rung.models.llamacpp import LlamaCppModel, open_llama

    model = registry.create(f"llamacpp:{name}", {})
    assert isinstance(model, LlamaCppModel)
    llm = open_llama(
        model.resolve_path(),
        extra_buffers=setting,  # type: ignore[arg-type]
        n_ctx=1024,
        n_threads=threads,
        n_threads_batch=threads,
        verbose=False,
    )
    prompt = llm.tokenize(PROMPT.encode("utf-8"))
    print("ready", len(prompt), flush=True)
    for _ in sys.stdin:
        llm.reset()
        started = time.perf_counter()
        llm.eval(prompt)
        prompt_s = time.perf_counter() - started
        llm.reset()
        started = time.perf_counter()
        out: Any = llm.create_completion(
            "Once upon a time", max_tokens=GENERATE, temperature=0.0, repeat_penalty=1.0
        )
        generate_s = time.perf_counter() - started
        print(len(prompt) / prompt_s, out["usage"]["completion_tokens"] / generate_s, flush=True)


class _Side:
    def __init__(self, name: str, setting: str, threads: int) -> None:
        command = [sys.executable, __file__, "--worker", name, setting, "--threads", str(threads)]
        self.proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        word, *rest = self.proc.stdout.readline().split()
        if word != "ready":
            raise RuntimeError(f"worker for {name} ({setting}) said {word!r}")
        self.prompt_tokens = int(rest[0])

    def once(self) -> tuple[float, float]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        prompt, generate = self.proc.stdout.readline().split()
        return float(prompt), float(generate)

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def run(name: str, settings: list[str], repeats: int, threads: int) -> dict[str, Any]:
    sides = {s: _Side(name, s, threads) for s in settings}
    runs: dict[str, list[tuple[float, float]]] = {s: [] for s in settings}
    try:
        for side in sides.values():
            side.once()  # warm-up: page the weights in
        for _ in range(repeats):
            for setting, side in sides.items():
                runs[setting].append(side.once())
    finally:
        for side in sides.values():
            side.close()
    return {
        s: (statistics.median(p for p, _ in r), statistics.median(g for _, g in r))
        for s, r in runs.items()
    } | {"prompt_tokens": next(iter(sides.values())).prompt_tokens}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per setting")
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp threads")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args.worker[0], args.worker[1], args.threads)
        return
    from rung.models.cpu import cpu_flags, has_amx

    amx = has_amx(cpu_flags())
    settings = ["off"] if amx else ["on", "off"]
    if amx:
        print("this CPU reports AMX: repacking on would crash llama.cpp; measuring off only")
    print(f"{args.threads} thread(s), median of {args.repeats} runs after a warm-up\n")
    print(f"{'model':24} {'setting':8} {'prompt tok/s':>13} {'generate tok/s':>15}")
    ratios = []
    for name in MODELS:
        figures = run(name, settings, args.repeats, args.threads)
        for setting in settings:
            prompt, generate = figures[setting]
            print(f"{name:24} {setting:8} {prompt:13.1f} {generate:15.1f}")
        if not amx:
            (p_on, g_on), (p_off, g_off) = figures["on"], figures["off"]
            ratios.append((name, p_on / p_off, g_on / g_off))
    for name, prompt_ratio, generate_ratio in ratios:
        print(f"{name}: on/off prompt {prompt_ratio:.3f}, generation {generate_ratio:.3f}")


if __name__ == "__main__":
    main()
