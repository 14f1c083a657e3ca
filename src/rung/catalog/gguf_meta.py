"""Model-card facts of a GGUF file, from its header (``rung.formats.gguf``), never its weights.

Everything is read from the metadata keys llama.cpp itself reads (``general.architecture``,
``<arch>.context_length``, ``<arch>.block_count``, ...) and the tensor table (shapes and types).
A key the file does not carry stays None: the catalog shows "unknown" rather than a guess.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rung.formats.gguf import GGUFHeader, file_type_name, read_header

__all__ = ["ENCODER_ARCHITECTURES", "GGUFFacts", "facts_from_header", "file_type_name", "read_gguf"]

#: architectures whose GGUF holds an encoder: no KV cache grows with the context
ENCODER_ARCHITECTURES = frozenset(
    {"bert", "nomic-bert", "nomic-bert-moe", "jina-bert-v2", "t5encoder"}
)


@dataclass(frozen=True)
class GGUFFacts:
    """What a GGUF header says. None means the file does not say."""

    path: str
    file_size_bytes: int
    architecture: str | None = None
    name: str | None = None
    license: str | None = None
    size_label: str | None = None
    file_type: str | None = None  # e.g. Q4_K_M, from general.file_type
    context_length: int | None = None
    n_layers: int | None = None
    embedding_length: int | None = None
    n_heads: int | None = None
    n_kv_heads: int | None = None  # summed per layer when the file lists one per layer
    n_kv_heads_per_layer: tuple[int, ...] | None = None
    key_length: int | None = None
    value_length: int | None = None
    sliding_window: int | None = None
    params: int | None = None  # sum of the elements of every tensor
    tensor_types: dict[str, int] = field(default_factory=dict)  # ggml type -> tensor count

    @property
    def is_encoder(self) -> bool:
        return self.architecture in ENCODER_ARCHITECTURES


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def facts_from_header(h: GGUFHeader) -> GGUFFacts:
    kv = h.arch_value("attention.head_count_kv")
    kv_per_layer: tuple[int, ...] | None = None
    if isinstance(kv, tuple):
        counts = [n for n in (_int(x) for x in kv) if n is not None]
        kv_per_layer = tuple(counts) if counts and len(counts) == len(kv) else None
        kv = None
    return GGUFFacts(
        path=h.path,
        file_size_bytes=h.file_size,
        architecture=h.architecture,
        name=_str(h.get("general.name")),
        license=_str(h.get("general.license")),
        size_label=_str(h.get("general.size_label")),
        file_type=h.quantization,
        context_length=h.context_length,
        n_layers=_int(h.arch_value("block_count")),
        embedding_length=_int(h.arch_value("embedding_length")),
        n_heads=_int(h.arch_value("attention.head_count")),
        n_kv_heads=_int(kv),
        n_kv_heads_per_layer=kv_per_layer,
        key_length=_int(h.arch_value("attention.key_length")),
        value_length=_int(h.arch_value("attention.value_length")),
        sliding_window=_int(h.arch_value("attention.sliding_window")),
        params=h.n_params if h.n_tensors else None,
        tensor_types=dict(h.tensor_types),
    )


def read_gguf(path: Path) -> GGUFFacts:
    """The header facts of the GGUF at ``path``; read once per file version in a process."""
    return facts_from_header(read_header(path))
