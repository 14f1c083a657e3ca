"""Loading a source into a tokenizer and a causal LM (on the CPU; the backend moves it), a LoRA
adapter merged in, and the failures said in words a user can act on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rung.errors import MissingDependencyError, ModelLoadError
from rung.models.transformers.hub import hub_help, hub_offline, hub_snapshot
from rung.models.transformers.options import TUNE_INSTALL
from rung.models.transformers.sources import ModelSource

__all__ = ["apply_adapter", "load_failure", "load_pretrained", "load_tokenizer"]


def load_pretrained(src: ModelSource, dtype: Any, trust_remote_code: bool) -> tuple[Any, Any]:
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
        kwargs["local_files_only"] = hub_offline() or hub_snapshot(src.repo) is not None
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(where, **kwargs)
        model = transformers.AutoModelForCausalLM.from_pretrained(where, dtype=dtype, **kwargs)
    except (OSError, ValueError, KeyError, RuntimeError, ImportError) as e:
        raise ModelLoadError(load_failure(src, e)) from e
    return tokenizer, model


def load_tokenizer(folder: Path, trust_remote_code: bool) -> Any:
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


def apply_adapter(model: Any, folder: Path) -> Any:
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


def load_failure(src: ModelSource, e: Exception) -> str:
    detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if src.kind == "hub":
        return f"cannot load {src.repo} from the Hugging Face hub or its cache: {detail}; " + (
            hub_help(str(src.repo))
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
