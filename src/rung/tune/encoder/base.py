"""Which base model may be fine-tuned here: an encoder (bundled name, folder or hub id), not a
text generator, a GGUF file or another provider's model; and whether the options fit it."""

from __future__ import annotations

import json
from pathlib import Path

from rung.errors import ConfigurationError, ModelLoadError
from rung.models.encoder import EncoderModel, encoder_folder
from rung.tune.encoder.options import TuneOptions

__all__ = ["check_base", "resolve_base"]

#: architectures that generate text: fine-tune those with LoRA, not as an encoder classifier
_DECODERS = ("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")


def resolve_base(base: str) -> tuple[str, Path]:
    """(model id for the card, local folder) of the base model. Only encoders fine-tune here."""
    provider, sep, name = base.partition(":")
    if sep and provider.isidentifier() and not Path(base).expanduser().exists():
        if provider != EncoderModel.provider:
            raise ModelLoadError(
                f"rung tune fine-tunes encoder models, and {base} is a {provider} model; use "
                "--base encoder:minilm-l6, encoder:<folder> or encoder:<hub id>"
            )
    else:
        name = base
    path = Path(name).expanduser()
    if path.is_file() and _is_gguf(path):
        raise ModelLoadError(
            f"{path} is a GGUF file (a llama.cpp model), not an encoder; rung tune fine-tunes "
            "encoders: use --base encoder:minilm-l6 or a Hugging Face encoder folder"
        )
    folder = encoder_folder(name)
    model_id = f"encoder:{name}" if not path.is_dir() else f"encoder:{folder}"
    return model_id, folder


def _is_gguf(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(4) == b"GGUF" or path.suffix.lower() == ".gguf"
    except OSError:
        return path.suffix.lower() == ".gguf"


def _transformer_dir(folder: Path) -> Path:
    """Where the transformer's config.json is: the folder itself, or the sentence-transformers
    module folder that modules.json names."""
    if (folder / "config.json").is_file():
        return folder
    try:
        modules = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return folder
    for module in modules if isinstance(modules, list) else []:
        if str(module.get("type", "")).endswith("Transformer"):
            return folder / str(module.get("path", ""))
    return folder


def check_base(model_id: str, folder: Path, options: TuneOptions) -> None:
    config_path = _transformer_dir(folder) / "config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelLoadError(
            f"{model_id}: cannot read {config_path} ({e}); point --base at a Hugging Face or "
            "sentence-transformers encoder folder"
        ) from e
    architectures = [str(a) for a in config.get("architectures") or []]
    if any(a.endswith(_DECODERS) for a in architectures) or config.get("is_decoder"):
        raise ModelLoadError(
            f"{model_id} is a text generator ({', '.join(architectures)}), not an encoder; rung "
            "tune fine-tunes encoders such as encoder:minilm-l6 (fine-tune generators with LoRA)"
        )
    limit = config.get("max_position_embeddings")
    if isinstance(limit, int) and options.max_seq_length > limit:
        raise ConfigurationError(
            f"--max-seq-length {options.max_seq_length} is longer than {model_id} can read "
            f"({limit} positions); lower it to {limit} or less"
        )
    if options.method == "setfit" and not (folder / "config.json").is_file():
        return
    if options.method == "full" and not (folder / "config.json").is_file():
        raise ModelLoadError(
            f"{folder} keeps its transformer in a sub-folder ({config_path.parent.name}); point "
            f"--base at encoder:{config_path.parent} for a full fine-tune"
        )
