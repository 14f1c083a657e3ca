"""A rung loaded and asked in a fresh process: the crash probe, and the memory probe.

Native code (llama.cpp, torch) can kill the process that runs it: a segfault is no exception
Python can catch. Before ``rung compare`` loads a rung that runs in its own process, and before
``rung serve`` starts, the rung is loaded and asked once in a child process
(``python -m rung.compare.probe``); a child that dies by a signal becomes a
``ModelCrashError`` naming the rung, the signal, the stage it reached and what to try, and
the caller goes on without that rung (compare) or refuses to start (serve).

The same child measures memory (``measure_memory``): the peak resident set (``VmHWM`` in
/proc/self/status, falling back to ``getrusage``), the resident set before the model was
loaded, and the peak GPU memory (see ``rung.compare.gpu``).

The child tells the parent each stage it enters on stdout, one ``rung-probe:`` line each, so
the parent knows where a crash happened; faulthandler prints the Python frame the signal hit
on stderr, and its innermost frame goes into the message.
"""

from __future__ import annotations

import asyncio
import faulthandler
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rung.compare.gpu import GpuSampler
from rung.compare.memory import MemoryReading, gpu_peak_mb, peak_rss_mb, rss_mb
from rung.errors import ModelCrashError, RungError
from rung.models import registry
from rung.models.base import ChatMessage, ClassifyRequest, GenerateRequest

__all__ = ["ProbeResult", "measure_memory", "probe_rung", "train_subset"]

MARK = "rung-probe: "
STAGES = {
    "create": "starting",
    "load": "loading",
    "train": "training",
    "answer": "answering its first requests",
    "generate": "generating its first tokens",
}
#: what the probe generates when it asks a generative rung for text
PROBE_PROMPT = (ChatMessage("user", "Say hello."),)


@dataclass(frozen=True)
class ProbeResult:
    #: the memory reading (MemoryReading.to_json()) when the probe measured it
    memory: dict[str, Any] | None
    pid: int


def request_json(r: ClassifyRequest) -> dict[str, Any]:
    return {
        "text": r.text,
        "labels": list(r.labels),
        "messages": [{"role": m.role, "content": m.content} for m in r.messages],
    }


def train_subset(
    texts: Sequence[str], labels: Sequence[str], label_set: Sequence[str], per_label: int = 4
) -> dict[str, Any]:
    """A few training examples per label: enough for a rung that trains before it answers to
    answer in a crash probe, far fewer than the whole split it trains on for real."""
    kept: list[tuple[str, str]] = []
    seen: dict[str, int] = {}
    for text, label in zip(texts, labels, strict=True):
        if seen.get(label, 0) < per_label:
            seen[label] = seen.get(label, 0) + 1
            kept.append((text, label))
    return {
        "texts": [t for t, _ in kept],
        "labels": [lab for _, lab in kept],
        "label_set": list(label_set),
    }


# -- the child ----------------------------------------------------------------------------------


def _stage(name: str) -> None:
    print(MARK + json.dumps({"stage": name}), flush=True)


def _child(job: dict[str, Any]) -> dict[str, Any]:
    _stage("create")
    model = registry.create(job["model"], job.get("options") or {})
    model.check()
    baseline = rss_mb()
    requests = [
        ClassifyRequest(
            text=r["text"],
            labels=tuple(r["labels"]),
            messages=tuple(ChatMessage(m["role"], m["content"]) for m in r["messages"]),
        )
        for r in job["requests"]
    ]
    with GpuSampler() as gpu:
        _stage("load")
        model.load()
        if model.needs_training:
            _stage("train")
            train = job["train"]
            model.fit(train["texts"], train["labels"], train["label_set"])
        trained = model.trained_labels
        if trained is not None:  # a tuned folder answers its own labels only
            requests = [replace(r, labels=trained) if not r.labels else r for r in requests]
        requests = [r for r in requests if len(r.labels) >= 2]
        if requests:
            _stage("answer")
            for r in requests:
                asyncio.run(model.classify([r]))
        if job.get("generate") and model.can_generate:
            _stage("generate")
            asyncio.run(model.generate(GenerateRequest(messages=PROBE_PROMPT, max_tokens=4)))
    reading = MemoryReading(peak_rss_mb(), baseline, gpu_peak_mb(gpu.peak_mb), os.getpid())
    model.close()
    return {"ok": True, "memory": reading.to_json() if job.get("memory") else None}


def main() -> int:
    faulthandler.enable()  # a native crash prints the Python frame it hit on stderr
    job = json.loads(sys.stdin.read())
    try:
        result = _child(job)
    except RungError as e:
        result = {"ok": False, "error": str(e)}
    print(MARK + json.dumps(result), flush=True)
    return 0


# -- the parent ---------------------------------------------------------------------------------


_FRAME = re.compile(r'File "(?P<path>[^"]+)", line (?P<line>\d+) in (?P<func>\S+)')


def _crash_frame(stderr: str) -> str:
    """The innermost Python frame faulthandler printed (most recent call first), short."""
    _, found, after = stderr.partition("most recent call first")
    match = _FRAME.search(after) if found else None
    if match is None:
        return ""
    path = Path(match["path"])
    return f", at {'/'.join(path.parts[-2:])}:{match['line']} in {match['func']}"


def _signal_name(returncode: int) -> str:
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def probe_rung(
    model_id: str,
    options: dict[str, Any],
    requests: Sequence[ClassifyRequest] = (),
    train: dict[str, Any] | None = None,
    *,
    generate: bool = False,
    memory: bool = False,
    timeout_s: float = 900,
    on_start: Callable[[int], None] | None = None,
) -> ProbeResult:
    """Load ``model_id`` in a fresh interpreter, train it on ``train`` when it trains, answer
    ``requests`` (a request without labels takes a tuned folder's own), generate a few tokens
    when ``generate``; with ``memory``, return what that took in memory.

    Raises ModelCrashError when the child dies by a signal, RungError when it reports an error
    or runs past ``timeout_s``. ``on_start`` gets the child's process id once it runs (the
    memory benchmark polls it from outside)."""
    job = {
        "model": model_id,
        "options": options,
        "requests": [request_json(r) for r in requests],
        "train": train,
        "generate": generate,
        "memory": memory,
    }
    what = "memory probe" if memory else "probe"
    with subprocess.Popen(
        [sys.executable, "-m", "rung.compare.probe"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        if on_start is not None:
            on_start(proc.pid)
        try:
            stdout, stderr = proc.communicate(json.dumps(job), timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise RungError(
                f"the {what} for {model_id} took longer than {timeout_s:g} s; give it "
                "fewer requests, or turn measure.memory off for this rung"
            ) from None
    said = [json.loads(line[len(MARK) :]) for line in stdout.splitlines() if line.startswith(MARK)]
    stages = [s["stage"] for s in said if "stage" in s]
    if proc.returncode < 0:
        name = _signal_name(proc.returncode)
        stage = stages[-1] if stages else "create"
        hint = registry.backend_class(registry.parse_model_id(model_id)[0]).crash_hint
        raise ModelCrashError(
            f"{model_id} crashed while {STAGES.get(stage, stage)} ({name}, in a fresh probe "
            f"process{_crash_frame(stderr)}): {hint}",
            model_id=model_id,
            signal=name,
            stage=stage,
        )
    results = [s for s in said if "ok" in s]
    if proc.returncode != 0 or not results:
        tail = (stderr or stdout).strip().splitlines()[-1:] or ["no output"]
        raise RungError(f"the {what} for {model_id} failed: {tail[0]}")
    result = results[-1]
    if not result["ok"]:
        raise RungError(f"the {what} for {model_id} failed: {result.get('error')}")
    return ProbeResult(memory=result.get("memory"), pid=proc.pid)


def measure_memory(
    model_id: str,
    options: dict[str, Any],
    requests: list[ClassifyRequest],
    train: dict[str, Any] | None = None,
    timeout_s: float = 900,
    *,
    on_start: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Run the memory probe for one rung in a fresh interpreter; returns its reading
    (``MemoryReading.to_json()``). A rung that trains needs its training split (``train``)."""
    if train is None and registry.create(model_id, options).needs_training:
        raise RungError(
            f"the memory probe for {model_id} cannot run: the rung trains on the task's data "
            "before it answers; pass the training split (train=)"
        )
    result = probe_rung(
        model_id, options, requests, train, memory=True, timeout_s=timeout_s, on_start=on_start
    )
    assert result.memory is not None
    return result.memory


if __name__ == "__main__":
    raise SystemExit(main())
