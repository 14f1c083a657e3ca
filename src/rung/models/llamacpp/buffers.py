"""Weight repacking (llama.cpp's "extra buffer types"), and the one way rung builds a Llama."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rung.models.cpu import cpu_flags, has_amx
from rung.models.llamacpp.options import ExtraBuffers

if TYPE_CHECKING:
    from llama_cpp import Llama

__all__ = ["extra_buffers_note", "extra_buffers_patch", "open_llama", "use_extra_buffers"]


def use_extra_buffers(setting: ExtraBuffers, flags: frozenset[str] | None = None) -> bool:
    """Whether llama.cpp may repack weights into extra buffer types on this CPU.

    On a CPU with AMX, llama.cpp stores the weights of a model in an AMX buffer, and the
    matrix multiplication over it segfaults (ggml-org/llama.cpp#20824: the whole process dies
    on the first decode). Turning the extra buffer types off keeps the weights in plain CPU
    buffers, which every CPU runs; elsewhere repacking is kept, since AVX2 and AVX-512
    layouts speed up some quantizations (``benchmarks/bench_extra_buffers.py`` measures it).
    ``flags`` default to this machine's (``rung.models.cpu.cpu_flags``)."""
    if setting == "auto":
        return not has_amx(cpu_flags() if flags is None else flags)
    return setting == "on"


def extra_buffers_note(flags: frozenset[str] | None = None) -> str:
    """One line for ``rung models`` and ``rung fit``: what ``extra_buffers: auto`` does here."""
    flags = cpu_flags() if flags is None else flags
    if has_amx(flags):
        return (
            "this CPU reports AMX: llamacpp rungs load with llama.cpp's weight repacking off "
            "(extra_buffers: auto), since its AMX kernels crash; set extra_buffers: on to force it"
        )
    return (
        "llamacpp rungs load with llama.cpp's weight repacking on (extra_buffers: auto; this "
        "CPU reports no AMX); set extra_buffers: off if a model crashes while it answers"
    )


_params_lock = threading.Lock()


@contextlib.contextmanager
def extra_buffers_patch(enabled: bool) -> Iterator[None]:
    """While inside, every ``llama_cpp.Llama`` built in this process loads with
    ``use_extra_bufts = enabled``.

    llama-cpp-python's ``Llama`` takes no argument for this field of ``llama_model_params``: it
    builds the params from ``llama_model_default_params()`` inside its constructor. The
    function is wrapped for the time of the block (under a lock, so that two threads building
    models do not see each other's value). A llama-cpp-python too old to have the field has no
    extra buffer types to turn off."""
    import llama_cpp.llama_cpp as lib

    if "use_extra_bufts" not in {name for name, *_ in lib.llama_model_params._fields_}:
        yield
        return
    with _params_lock:
        original = lib.llama_model_default_params

        def default_params() -> Any:
            params = original()
            params.use_extra_bufts = enabled
            return params

        lib.llama_model_default_params = default_params
        try:
            yield
        finally:
            lib.llama_model_default_params = original


def open_llama(path: Path | str, *, extra_buffers: ExtraBuffers = "auto", **kwargs: Any) -> Llama:
    """``llama_cpp.Llama(model_path=path, **kwargs)`` with weight repacking decided by
    ``use_extra_buffers``: the backend, the memory probe's child, the benchmarks' direct
    baseline and the tests all build their Llama here, so none of them crashes on AMX."""
    import llama_cpp

    with extra_buffers_patch(use_extra_buffers(extra_buffers)):
        return llama_cpp.Llama(model_path=str(path), **kwargs)
