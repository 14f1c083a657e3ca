"""The files of a LoRA folder besides its cards: the peft adapter with an adapter_config.json
that names the base itself, the tokenizer, ``merged/`` (with ``merge``), and the permissions of
any folder the user creates."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from rung.errors import ConfigurationError
from rung.models.transformers import ADAPTER_CONFIG, MERGED_DIR, ModelSource
from rung.tune.lm.base import base_path
from rung.tune.lm.progress import LoraProgress

__all__ = ["dequantized", "fix_adapter_config", "readable", "save_adapter"]


def save_adapter(
    folder: Path,
    peft_model: Any,
    tok: Any,
    *,
    source: ModelSource,
    base_id: str,
    merge: bool,
    progress: LoraProgress,
) -> None:
    """The adapter, the tokenizer and, with ``merge``, the merged weights into ``folder``."""
    progress.phase("saving the adapter")
    # No embedding layers are trained: skip peft's look for a changed vocabulary, which
    # warns when the base was a GGUF (no config.json beside it).
    peft_model.save_pretrained(str(folder), save_embedding_layers=False)
    tok.save_pretrained(str(folder))
    fix_adapter_config(folder / ADAPTER_CONFIG, base_path(source))
    (folder / "README.md").unlink(missing_ok=True)  # peft's template card; ours follows
    if merge:
        progress.phase("merging the weights")
        merged: Any = dequantized(peft_model.merge_and_unload(), base_id)
        merged.save_pretrained(str(folder / MERGED_DIR))
        tok.save_pretrained(str(folder / MERGED_DIR))


def fix_adapter_config(path: Path, base: str) -> None:
    """peft records the folder transformers loaded from (for a GGUF, its parent folder); name
    the base itself, so that the adapter loads with peft alone where the base is a hub id or
    folder, and says which file it was trained on where it is a GGUF."""
    config = json.loads(path.read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = base
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def dequantized(model: Any, base_id: str) -> Any:
    """``model`` unmarked as quantized. transformers keeps a GGUF base's quantizer on the
    model and refuses to save it, though on the CPU the weights are plain float tensors: with
    every parameter a float, the merged model is an ordinary one."""
    if getattr(model, "hf_quantizer", None) is None:
        return model
    if not all(p.is_floating_point() for p in model.parameters()):
        raise ConfigurationError(
            f"the weights of {base_id} stay quantized on this device, so merged/ cannot be "
            "written; train on the CPU (--device cpu) or without --merge (the adapter folder "
            "and --gguf need no merged copy)"
        )
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return model


def readable(folder: Path) -> None:
    """The staging folder is private (mkdtemp: 0700) and some writers make 0600 files; the
    model folder gets the permissions of any folder the user creates (umask)."""
    umask = os.umask(0o022)  # the only way to read it; 0o022 meanwhile is the common default
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for path in folder.rglob("*"):
        path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)
