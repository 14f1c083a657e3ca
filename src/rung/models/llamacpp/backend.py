"""``LlamaCppModel``: a GGUF file run in-process by llama-cpp-python.

llama-cpp-python's ``Llama`` is not thread-safe: every call into it holds one lock, and the runner
sends one batch at a time (``max_concurrency = 1``). Every llamacpp model of the process runs
its calls on one shared thread (``native.llama_thread``).

A stream holds the model from its prompt to its last token; closing it early stops the
generation before the next token, and leaves the KV cache and llama-cpp-python's bookkeeping of
it consistent for the next call.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel

from rung.errors import (
    MissingDependencyError,
    ModelLoadError,
    ModelNotFoundError,
    did_you_mean,
)
from rung.formats.gguf import GGUFHeader, read_header
from rung.models.base import (
    ClassifyRequest,
    GenerateRequest,
    Generation,
    GenerationDelta,
    Model,
    ModelInfo,
    Prediction,
    stable_hash,
)
from rung.models.llamacpp.buffers import open_llama, use_extra_buffers
from rung.models.llamacpp.decoding import Emit, decode
from rung.models.llamacpp.labels import classify_one
from rung.models.llamacpp.native import llama_thread, log_relay, on_llama_thread, usable_cores
from rung.models.llamacpp.options import INSTALL, LlamaCppOptions
from rung.models.llamacpp.profile import PROFILE
from rung.models.llamacpp.prompt import Prompter
from rung.models.llamacpp.vocab import end_tokens
from rung.models.profile import BackendProfile

if TYPE_CHECKING:
    from llama_cpp import Llama

__all__ = ["LlamaCppModel"]


class LlamaCppModel(Model):
    """A GGUF model run in-process by llama-cpp-python."""

    provider: ClassVar[str] = "llamacpp"
    Options: ClassVar[type[BaseModel]] = LlamaCppOptions
    profile: ClassVar[BackendProfile] = PROFILE
    can_generate: ClassVar[bool] = True
    can_stream: ClassVar[bool] = True
    crash_hint: ClassVar[str] = (
        "on a CPU with AMX set options: {extra_buffers: off} (llama.cpp's weight repacking); "
        "else try options: {n_threads: 1}, another GGUF file, or rebuild llama-cpp-python "
        "(pip install --force-reinstall --no-cache-dir llama-cpp-python)"
    )

    def __init__(self, name: str, options: BaseModel | None = None) -> None:
        super().__init__(name, options)
        assert isinstance(self.options, LlamaCppOptions)
        self.opts: LlamaCppOptions = self.options
        self.max_concurrency = 1
        self._path: Path | None = None
        self._header: GGUFHeader | None = None
        self._llm: Llama | None = None
        self._lock = threading.Lock()
        self._prompter = Prompter(self.model_id)
        self._eog: tuple[int, ...] | None = None

    # -- the file -------------------------------------------------------------------------------

    def resolve_path(self) -> Path:
        """The GGUF file this name means: a bundled model, or a path."""
        if self._path is not None:
            return self._path
        bundled = self.profile.bundled_file(self.name)
        if bundled is not None:
            path = bundled.locate()
        else:
            path = Path(self.name).expanduser()
            if not path.is_file():
                raise self._not_found(path)
        self._path = path.resolve()
        return self._path

    def _not_found(self, path: Path) -> ModelNotFoundError:
        names = self.profile.bundled_names
        if path.exists():
            return ModelNotFoundError(f"{path} is not a file; give the path of a .gguf file")
        looks_like_path = os.sep in self.name or self.name.endswith(".gguf") or "~" in self.name
        if looks_like_path:
            return ModelNotFoundError(
                f"model file not found: {path}; check the path, or use a bundled model "
                f"({', '.join(names)})"
            )
        return ModelNotFoundError(
            f"unknown llamacpp model {self.name!r}{did_you_mean(self.name, names)}; "
            f"bundled: {', '.join(names)}; a path to a .gguf file also works"
        )

    def check(self) -> None:
        path = self.resolve_path()
        self._header = read_header(path)

    def _read_header(self) -> GGUFHeader:
        if self._header is None:
            self.check()
        assert self._header is not None
        return self._header

    # -- loading --------------------------------------------------------------------------------

    def load(self) -> None:
        if self._llm is not None:
            return
        header = self._read_header()
        path = self.resolve_path()
        try:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter
        except ImportError as e:
            raise MissingDependencyError(f"the llamacpp backend ({e.name})", INSTALL) from e
        threads = self.opts.n_threads or usable_cores()
        with log_relay().errors_while() as errors:
            try:
                llm = open_llama(
                    path,
                    extra_buffers=self.opts.extra_buffers,
                    # llama.cpp rounds the context up to a multiple of 256 but llama-cpp-python
                    # sizes its token buffer as asked: ask for the size llama.cpp will use.
                    n_ctx=-(-self.opts.n_ctx // 256) * 256,
                    n_batch=self.opts.n_batch,
                    n_threads=threads,
                    n_threads_batch=threads,
                    n_gpu_layers=self.opts.n_gpu_layers,
                    seed=self.opts.seed,
                    logits_all=False,
                    verbose=False,
                )
            except (ValueError, RuntimeError, OSError) as e:
                said = " ".join(line.strip() for line in errors if line.strip())[-600:]
                raise ModelLoadError(
                    f"llama.cpp cannot load {path}: {said or e}; the file may be corrupt or "
                    "made for a newer llama.cpp: re-download it, or upgrade llama-cpp-python"
                ) from e
        self._prompter = Prompter.for_model(
            llm, header.chat_template, self.model_id, Jinja2ChatFormatter
        )
        self._llm = llm

    def _loaded(self) -> Llama:
        if self._llm is None:
            raise RuntimeError(f"{self.model_id}: call load() before classify() or generate()")
        return self._llm

    def close(self) -> None:
        with self._lock:
            if self._llm is not None:
                self._llm.close()
                self._llm = None
                self._eog = None

    # -- classify -------------------------------------------------------------------------------

    async def classify(self, requests: Sequence[ClassifyRequest]) -> list[Prediction]:
        return await on_llama_thread(self._classify_sync, list(requests))

    def _classify_sync(self, requests: list[ClassifyRequest]) -> list[Prediction]:
        with self._lock:
            llm = self._loaded()
            return [classify_one(llm, self._prompter, r, self._eog_tokens) for r in requests]

    def _eog_tokens(self) -> tuple[int, ...]:
        """Every end-of-generation token (end of text, end of turn, ...), found once."""
        if self._eog is None:
            self._eog = end_tokens(self._loaded())
        return self._eog

    # -- generate and stream ------------------------------------------------------------------

    async def generate(self, request: GenerateRequest) -> Generation:
        return await on_llama_thread(self._generate_sync, request)

    async def stream(self, request: GenerateRequest) -> AsyncIterator[GenerationDelta]:
        """The generation as llama.cpp makes it. Text deltas carry the running token counts
        (so that a consumer that stops early knows what was used); the last delta carries the
        finish reason and the counts of the whole generation.

        The generation runs as one job on the llama thread, holding the model's lock from the
        prompt to the last token; its tokens come back through a queue. Closing this iterator
        early (a client went away, a task was cancelled) stops the generation before the next
        token, and the lock is free for the next call."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[GenerationDelta | Exception] = asyncio.Queue()
        stop = threading.Event()

        def put(item: GenerationDelta | Exception) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is closed: nobody reads the rest
                stop.set()

        def emit(text: str, tokens_in: int, tokens_out: int) -> None:
            put(GenerationDelta(text, tokens_in=tokens_in, tokens_out=tokens_out))

        def run() -> None:
            try:
                done = self._generate_sync(request, emit, stop)
            except Exception as e:  # raised in the consumer's task
                put(e)
                return
            put(
                GenerationDelta(
                    "",
                    finish_reason=done.finish_reason,
                    tokens_in=done.tokens_in,
                    tokens_out=done.tokens_out,
                )
            )

        # submit(), not run_in_executor(): the job must not be tied to a loop that may be gone
        # before the job ends (the consumer left and its loop closed).
        llama_thread().submit(run)
        try:
            while True:
                item = await queue.get()
                if isinstance(item, Exception):
                    raise item
                yield item
                if item.finish_reason is not None:
                    return
        finally:
            stop.set()

    def _generate_sync(
        self,
        request: GenerateRequest,
        emit: Emit | None = None,
        stop: threading.Event | None = None,
    ) -> Generation:
        with self._lock:
            if stop is not None and stop.is_set():  # the consumer left while this waited
                return Generation("", 0, 0, "stop")
            return decode(self._loaded(), self._prompter, request, self.opts, emit, stop)

    # -- facts ----------------------------------------------------------------------------------

    def info(self) -> ModelInfo:
        header = self._read_header()
        path = self.resolve_path()
        params: int | None = header.n_params or None
        if self._llm is not None:
            params = int(self._llm._model.n_params()) or params
        extra: dict[str, Any] = {
            "architecture": header.architecture,
            "chat_template": header.chat_template is not None,
            "n_ctx": self._llm.n_ctx() if self._llm is not None else self.opts.n_ctx,
            "extra_buffers": use_extra_buffers(self.opts.extra_buffers),
        }
        return ModelInfo(
            params=params,
            file_size_bytes=header.file_size,
            path=str(path),
            quantization=header.quantization,
            context_length=header.context_length,
            extra=extra,
        )

    def fingerprint(self) -> str:
        try:
            path: Path | None = self.resolve_path()
        except (ModelNotFoundError, MissingDependencyError):
            path = None
        stat = path.stat() if path is not None else None
        return stable_hash(
            {
                "id": self.model_id,
                "path": str(path) if path is not None else None,
                "size": stat.st_size if stat else None,
                "mtime_ns": stat.st_mtime_ns if stat else None,
                "options": self.opts.model_dump(mode="json"),
            }
        )
