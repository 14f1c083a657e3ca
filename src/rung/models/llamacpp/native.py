"""llama.cpp's process-wide state: the one thread that runs its computations, and its log.

Both are made once per process, on first use (``functools.cache``), for every llamacpp model.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import logging
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = ["LogRelay", "llama_thread", "log_relay", "on_llama_thread", "usable_cores"]

#: the logger of the backend, whatever module of its package logs
log = logging.getLogger("rung.models.llamacpp")
A = TypeVar("A")
R = TypeVar("R")


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the cores this process may run on (Linux)
    except AttributeError:
        return os.cpu_count() or 1


@functools.cache
def llama_thread() -> ThreadPoolExecutor:
    """The one thread that runs llama.cpp's computations in this process, for every model.

    llama.cpp's CPU backend is built with OpenMP, whose thread team belongs to the thread that
    calls it. Calls from two threads (two models, or one model from two worker threads) keep two
    teams alive, and once a process holds more OpenMP threads than cores, each team runs about
    40% slower (measured on 2 cores: 173 tokens/s from one thread, 104 when two threads take
    turns). One thread keeps one team."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="rung-llamacpp")


async def on_llama_thread(fn: Callable[[A], R], arg: A) -> R:
    return await asyncio.get_running_loop().run_in_executor(llama_thread(), fn, arg)


class LogRelay:
    """llama.cpp's log, sent to the ``rung.models.llamacpp`` logger (debug) instead of stderr;
    while a model loads, its error lines are also kept so that a failure can say what
    llama.cpp said.

    ggml's levels are 1 debug, 2 info, 3 warn, 4 error, 5 continue the previous message;
    llama_cpp._logger maps an older numbering, which prints warnings to stderr whatever
    ``verbose`` says."""

    def __init__(self, llama_cpp: Any) -> None:
        self.level = 0
        self.errors: list[str] | None = None
        self.callback = llama_cpp.llama_log_callback(self._on_log)  # kept alive with self
        llama_cpp.llama_log_set(self.callback, ctypes.c_void_p(0))

    def _on_log(self, level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        if level != 5:
            self.level = level
        message = text.decode("utf-8", errors="replace")
        if self.level == 4 and self.errors is not None:
            self.errors.append(message)
        log.debug("llama.cpp: %s", message.rstrip())

    @contextlib.contextmanager
    def errors_while(self) -> Iterator[list[str]]:
        errors: list[str] = []
        self.errors = errors
        try:
            yield errors
        finally:
            self.errors = None


@functools.cache
def log_relay() -> LogRelay:
    import llama_cpp

    return LogRelay(llama_cpp)
