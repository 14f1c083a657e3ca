"""Facts read from a GGUF file's header with the ``gguf`` package, never from its weights.

Everything is read from the metadata keys llama.cpp itself reads (``general.architecture``,
``<arch>.context_length``, ``<arch>.block_count``, ...) and the tensor table (shapes and types).
A key the file does not carry stays None: the catalog shows "unknown" rather than a guess.

``gguf.GGUFReader`` builds a numpy view for every string of the tokenizer's vocabulary, which
takes seconds for a 262k-token vocabulary. ``_HeaderReader`` skips the contents of long arrays
(the vocabulary, merges, token types) by walking their lengths, so a card reads in well under a
second; the parsing of every other key is the package's own.
"""

from __future__ import annotations

import struct
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from rung.errors import ModelLoadError

__all__ = ["GGUFFacts", "file_type_name", "read_gguf"]

#: arrays longer than this are skipped (only per-layer arrays, at most a few hundred long, are read)
_LONG_ARRAY = 1024
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


def file_type_name(value: int) -> str | None:
    """``general.file_type`` as llama.cpp names it (MOSTLY_Q4_K_M → Q4_K_M)."""
    from gguf import LlamaFileType

    try:
        name = LlamaFileType(value).name
    except ValueError:
        return None
    if name == "GUESSED":
        return None
    return name.removeprefix("MOSTLY_").removeprefix("ALL_")


def _reader_class() -> type[Any]:
    from gguf import GGUFReader, GGUFValueType

    class _HeaderReader(GGUFReader):
        def _get_field_parts(
            self, orig_offs: int, raw_type: int
        ) -> tuple[int, list[Any], list[int], list[Any]]:
            if GGUFValueType(raw_type) != GGUFValueType.ARRAY:
                return super()._get_field_parts(orig_offs, raw_type)
            raw_itype = self._get(orig_offs, self.gguf_scalar_to_np[GGUFValueType.UINT32])
            alen = self._get(orig_offs + 4, self.gguf_scalar_to_np[GGUFValueType.UINT64])
            if int(alen[0]) <= _LONG_ARRAY:
                return super()._get_field_parts(orig_offs, raw_type)
            itype = GGUFValueType(int(raw_itype[0]))
            offs = orig_offs + 12
            if itype == GGUFValueType.STRING:
                order = "<" if (self.byte_order == "I") == (sys.byteorder == "little") else ">"
                view = self.data.data  # the memmap's buffer: no copy
                unpack = struct.Struct(order + "Q").unpack_from
                for _ in range(int(alen[0])):
                    offs += 8 + unpack(view, offs)[0]
            elif itype in self.gguf_scalar_to_np:
                offs += int(alen[0]) * self.gguf_scalar_to_np[itype]().itemsize
            else:  # nested arrays: rare, let the package walk them
                return super()._get_field_parts(orig_offs, raw_type)
            # The contents are left out: this field then reads as an empty list.
            return offs - orig_offs, [raw_itype, alen], [], [GGUFValueType.ARRAY, itype]

    return _HeaderReader


def _value(fields: dict[str, Any], key: str) -> Any:
    f = fields.get(key)
    if f is None:
        return None
    try:
        return f.contents()
    except (ValueError, IndexError, UnicodeDecodeError):
        return None


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


@cache
def _read_cached(path: str, size: int, mtime_ns: int) -> GGUFFacts:
    from gguf import GGUFReader

    try:
        reader = _reader_class()(path)
    except (ValueError, KeyError, IndexError, struct.error, OSError) as e:
        raise ModelLoadError(
            f"{path} is not a readable GGUF file ({e}); check the path, or download the file again"
        ) from None
    except (TypeError, AttributeError):  # the package's internals changed: use it as published
        reader = GGUFReader(path)
    fields = reader.fields
    arch = _str(_value(fields, "general.architecture"))

    def arch_key(suffix: str) -> Any:
        return _value(fields, f"{arch}.{suffix}") if arch else None

    kv = arch_key("attention.head_count_kv")
    kv_per_layer: tuple[int, ...] | None = None
    if isinstance(kv, list) and kv and all(isinstance(x, int) for x in kv):
        kv_per_layer = tuple(kv)
        kv = None
    ft = _int(_value(fields, "general.file_type"))
    types: dict[str, int] = {}
    params = 0
    for t in reader.tensors:
        params += int(t.n_elements)
        types[t.tensor_type.name] = types.get(t.tensor_type.name, 0) + 1
    return GGUFFacts(
        path=path,
        file_size_bytes=size,
        architecture=arch,
        name=_str(_value(fields, "general.name")),
        license=_str(_value(fields, "general.license")),
        size_label=_str(_value(fields, "general.size_label")),
        file_type=file_type_name(ft) if ft is not None else None,
        context_length=_int(arch_key("context_length")),
        n_layers=_int(arch_key("block_count")),
        embedding_length=_int(arch_key("embedding_length")),
        n_heads=_int(arch_key("attention.head_count")),
        n_kv_heads=_int(kv),
        n_kv_heads_per_layer=kv_per_layer,
        key_length=_int(arch_key("attention.key_length")),
        value_length=_int(arch_key("attention.value_length")),
        sliding_window=_int(arch_key("attention.sliding_window")),
        params=params if reader.tensors else None,
        tensor_types=types,
    )


def read_gguf(path: Path) -> GGUFFacts:
    """The header facts of the GGUF at ``path``; read once per file version in a process."""
    if not path.is_file():
        raise ModelLoadError(f"GGUF file not found: {path}; check the path")
    with path.open("rb") as fh:
        if fh.read(4) != b"GGUF":
            raise ModelLoadError(
                f"{path} is not a GGUF file (no GGUF magic at its start); "
                "give the path of a .gguf model file"
            )
    st = path.stat()
    return _read_cached(str(path.resolve()), st.st_size, st.st_mtime_ns)
