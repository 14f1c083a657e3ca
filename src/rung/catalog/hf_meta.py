"""Facts read from a Hugging Face model folder: ``config.json`` and the safetensors headers.

A safetensors file starts with an 8-byte length and a JSON header listing every tensor's dtype
and shape, so the parameter count comes from the header alone, without loading a weight. Integer
tensors (position-id buffers) are not parameters and are left out. The license comes from the
YAML front matter of the folder's README.md (the model card), when it has one.
"""

from __future__ import annotations

import json
import math
import struct
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from rung.errors import ModelLoadError

__all__ = ["DTYPE_BYTES", "HFFacts", "facts_from_config", "read_hf_folder", "safetensors_header"]

#: bytes per value of the dtypes safetensors and config.json name
DTYPE_BYTES: dict[str, float] = {
    "F64": 8,
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "float32": 4,
    "float16": 2,
    "bfloat16": 2,
    "float64": 8,
}
_INT_DTYPES = frozenset({"I64", "I32", "I16", "I8", "U8", "U16", "U32", "U64", "BOOL"})
#: model types whose config describes an encoder (no KV cache grows with the context)
ENCODER_MODEL_TYPES = frozenset(
    {"bert", "roberta", "xlm-roberta", "distilbert", "mpnet", "electra", "deberta", "deberta-v2",
     "albert", "modernbert", "camembert", "nomic_bert"}
)  # fmt: skip
#: safetensors headers larger than this are refused rather than read into memory
_MAX_HEADER = 100 * 1024 * 1024


@dataclass(frozen=True)
class HFFacts:
    """What a config.json (and, for a folder, its safetensors headers) says. None = not said."""

    model_type: str | None = None
    architecture: str | None = None
    context_length: int | None = None
    n_layers: int | None = None
    hidden_size: int | None = None
    n_heads: int | None = None
    n_kv_heads: int | None = None
    head_dim: int | None = None
    sliding_window: int | None = None
    dtype: str | None = None  # the dtype most weights are stored in
    bytes_per_param: float | None = None
    params: int | None = None
    file_size_bytes: int | None = None
    license: str | None = None
    max_seq_length: int | None = None  # sentence-transformers truncates inputs here
    is_encoder: bool = False


def _int(config: dict[str, Any], *keys: str) -> int | None:
    for key in keys:
        value = config.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def facts_from_config(config: dict[str, Any]) -> HFFacts:
    """The figures a config.json states; multimodal configs are read from their text part."""
    text = config.get("text_config")
    cfg = {**config, **text} if isinstance(text, dict) else config
    model_type = cfg.get("model_type") if isinstance(cfg.get("model_type"), str) else None
    archs = config.get("architectures")
    arch = archs[0] if isinstance(archs, list) and archs and isinstance(archs[0], str) else None
    hidden = _int(cfg, "hidden_size", "n_embd", "d_model")
    heads = _int(cfg, "num_attention_heads", "n_head")
    kv = _int(cfg, "num_key_value_heads", "n_kv_heads")
    if kv is None and heads is not None and model_type is not None:
        kv = heads  # multi-head attention: transformers' own default when the key is absent
    head_dim = _int(cfg, "head_dim")
    if head_dim is None and hidden is not None and heads:
        head_dim = hidden // heads
    dtype = cfg.get("torch_dtype") or cfg.get("dtype")
    dtype = dtype if isinstance(dtype, str) else None
    return HFFacts(
        model_type=model_type,
        architecture=arch or model_type,
        context_length=_int(cfg, "max_position_embeddings", "n_positions", "max_seq_len"),
        n_layers=_int(cfg, "num_hidden_layers", "n_layer", "num_layers"),
        hidden_size=hidden,
        n_heads=heads,
        n_kv_heads=kv,
        head_dim=head_dim,
        sliding_window=_int(cfg, "sliding_window") if cfg.get("use_sliding_window", True) else None,
        dtype=dtype,
        bytes_per_param=DTYPE_BYTES.get(dtype) if dtype else None,
        is_encoder=(model_type or "") in ENCODER_MODEL_TYPES,
    )


def safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of a safetensors file (tensor names, dtypes, shapes, offsets)."""
    try:
        with path.open("rb") as fh:
            raw = fh.read(8)
            if len(raw) != 8:
                raise ValueError("shorter than the 8-byte header length")
            (length,) = struct.unpack("<Q", raw)
            if length > _MAX_HEADER:
                raise ValueError(f"header length {length} is implausible")
            header = json.loads(fh.read(length))
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise ModelLoadError(
            f"{path} is not a readable safetensors file ({e}); download it again"
        ) from None
    if not isinstance(header, dict):
        raise ModelLoadError(f"{path}: the safetensors header is not a JSON object")
    return header


def _front_matter_license(readme: Path) -> str | None:
    try:
        text = readme.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    if not text.startswith("---"):
        return None
    end = text.find("\n---", 3)
    if end < 0:
        return None
    try:
        meta = yaml.safe_load(text[3:end])
    except yaml.YAMLError:
        return None
    lic = meta.get("license") if isinstance(meta, dict) else None
    return lic if isinstance(lic, str) else None


def read_hf_folder(folder: Path) -> HFFacts:
    """The facts of a local model folder: its config.json, safetensors headers and README."""
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise ModelLoadError(
            f"{folder} has no config.json; give the folder of a Hugging Face model "
            "(the one holding config.json and the weights)"
        )
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{config_path} is not valid JSON ({e})") from None
    if not isinstance(config, dict):
        raise ModelLoadError(f"{config_path} is not a JSON object")
    facts = facts_from_config(config)
    shards = sorted(folder.glob("*.safetensors"))
    params: int | None = None
    dtype_counts: Counter[str] = Counter()
    if shards:
        params = 0
        for shard in shards:
            for name, info in safetensors_header(shard).items():
                if name == "__metadata__" or not isinstance(info, dict):
                    continue
                dtype = str(info.get("dtype"))
                if dtype in _INT_DTYPES:
                    continue  # buffers such as position ids, not parameters
                n = math.prod(int(d) for d in info.get("shape", []))
                params += n
                dtype_counts[dtype] += n
    weight_files = shards or sorted(folder.glob("pytorch_model*.bin"))
    size = sum(p.stat().st_size for p in weight_files) if weight_files else None
    stored = dtype_counts.most_common(1)[0][0] if dtype_counts else None
    bpp = DTYPE_BYTES.get(stored) if stored else facts.bytes_per_param
    st_config = folder / "sentence_bert_config.json"
    max_seq: int | None = None
    if st_config.is_file():
        try:
            max_seq = _int(json.loads(st_config.read_text(encoding="utf-8")), "max_seq_length")
        except (OSError, ValueError):
            max_seq = None
    return replace(
        facts,
        dtype=stored or facts.dtype,
        bytes_per_param=bpp,
        params=params,
        file_size_bytes=size,
        license=_front_matter_license(folder / "README.md"),
        max_seq_length=max_seq,
    )
