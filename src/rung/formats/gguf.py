"""The header of a GGUF file: its metadata and tensor table, checked, without its weights.

Both the ``llamacpp`` backend (before llama.cpp sees a file) and the catalog (model cards) read
GGUF files here, so that a file is judged the same way everywhere:

- the magic and the version (2 or 3; big-endian files are read too);
- the header itself must fit in the file (a download cut inside the vocabulary);
- the tensor data the header describes must fit in the file (a download cut in the weights),
  when every tensor type is known to the ``gguf`` package; a type newer than the package is
  counted as unknown and left for llama.cpp to judge.

The file is memory-mapped and walked with ``struct``. Arrays longer than ``LONG_ARRAY`` (the
vocabulary, its scores and merges: hundreds of thousands of entries) are skipped by walking
their lengths, never decoded, so a 262k-token vocabulary costs a few tens of milliseconds.
Shorter arrays (per-layer head counts) are kept as tuples.
"""

from __future__ import annotations

import math
import mmap
import struct
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from rung.errors import ModelLoadError

__all__ = ["GGUF_MAGIC", "LONG_ARRAY", "GGUFHeader", "file_type_name", "read_header"]

GGUF_MAGIC = b"GGUF"
#: arrays longer than this are skipped (per-layer arrays are at most a few hundred long)
LONG_ARRAY = 1024

Scalar = str | int | float | bool
Value = Scalar | tuple["Value | None", ...]

# GGUF value types: struct format of the fixed-size ones; 8 is a string, 9 an array.
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}  # fmt: skip
_STRING, _ARRAY = 8, 9
_REDOWNLOAD = "re-download or re-copy it"


@dataclass(frozen=True)
class GGUFHeader:
    """What a GGUF header says. A key the file does not carry is absent from ``metadata``."""

    path: str
    version: int
    #: scalars, and arrays of up to LONG_ARRAY items as tuples; longer arrays are left out
    metadata: dict[str, Value]
    n_tensors: int
    #: parameters: the elements of every tensor
    n_params: int
    #: ggml type name (Q4_K, F32, ...) -> tensor count; "unknown" for types newer than gguf
    tensor_types: dict[str, int] = field(default_factory=dict)
    #: the byte offset where the last tensor's data ends; None when a tensor type is unknown
    data_end: int | None = None
    file_size: int = 0

    def get(self, key: str) -> Value | None:
        return self.metadata.get(key)

    def arch_value(self, suffix: str) -> Value | None:
        """``<architecture>.<suffix>``, the keys llama.cpp reads per architecture."""
        arch = self.architecture
        return self.metadata.get(f"{arch}.{suffix}") if arch else None

    @property
    def architecture(self) -> str | None:
        arch = self.metadata.get("general.architecture")
        return arch if isinstance(arch, str) and arch.strip() else None

    @property
    def chat_template(self) -> str | None:
        template = self.metadata.get("tokenizer.chat_template")
        return template if isinstance(template, str) and template.strip() else None

    @property
    def context_length(self) -> int | None:
        return _int(self.arch_value("context_length"))

    @property
    def quantization(self) -> str | None:
        """``general.file_type`` as llama.cpp names it (MOSTLY_Q4_K_M → Q4_K_M)."""
        file_type = _int(self.metadata.get("general.file_type"))
        return file_type_name(file_type) if file_type is not None else None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def file_type_name(value: int) -> str | None:
    """``general.file_type`` as llama.cpp names it (MOSTLY_Q4_K_M → Q4_K_M); None when the
    value is unknown to the ``gguf`` package."""
    from gguf.constants import LlamaFileType

    try:
        name = LlamaFileType(value).name
    except ValueError:
        return None
    return None if name == "GUESSED" else name.removeprefix("MOSTLY_").removeprefix("ALL_")


class _Truncated(Exception):
    pass


class _Walker:
    """Reads GGUF fields at a moving offset of the mapped file; any read past its end is
    _Truncated (garbage lengths included: they point past the end before anything is read)."""

    def __init__(self, buf: mmap.mmap, size: int, order: str) -> None:
        self.buf = buf
        self.size = size
        self.off = 4  # after the magic
        self.order = order
        self._structs: dict[str, struct.Struct] = {}

    def unpack(self, fmt: str) -> tuple[int | float | bool, ...]:
        s = self._structs.get(fmt)
        if s is None:
            s = self._structs[fmt] = struct.Struct(self.order + fmt)
        if self.off + s.size > self.size:
            raise _Truncated
        values = s.unpack_from(self.buf, self.off)
        self.off += s.size
        return values

    def u32(self) -> int:
        return int(self.unpack("I")[0])

    def u64(self) -> int:
        return int(self.unpack("Q")[0])

    def string(self) -> str:
        n = self.u64()
        if self.off + n > self.size:
            raise _Truncated
        text = self.buf[self.off : self.off + n].decode("utf-8", errors="replace")
        self.off += n
        return text

    def skip(self, n: int) -> None:
        if self.off + n > self.size:
            raise _Truncated
        self.off += n

    def skip_strings(self, count: int) -> None:
        """Walk past ``count`` strings by their lengths: the vocabulary, never decoded."""
        off, buf = self.off, self.buf
        length = self._structs.setdefault("Q", struct.Struct(self.order + "Q")).unpack_from
        try:
            for _ in range(count):
                off += 8 + length(buf, off)[0]
        except struct.error:  # a length read past the end of the file
            raise _Truncated from None
        if off > self.size:
            raise _Truncated
        self.off = off

    def value(self, vtype: int) -> Value | None:
        """One value; None for an array too long to keep (its contents are skipped)."""
        if vtype in _SCALARS:
            return self.unpack(_SCALARS[vtype])[0]
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            etype, count = self.u32(), self.u64()
            if count <= LONG_ARRAY:
                return tuple(self.value(etype) for _ in range(count))
            self.skip_array(etype, count)
            return None
        raise ValueError(f"unknown GGUF value type {vtype}")

    def skip_array(self, etype: int, count: int) -> None:
        if etype in _SCALARS:
            self.skip(count * struct.calcsize(_SCALARS[etype]))
        elif etype == _STRING:
            self.skip_strings(count)
        elif etype == _ARRAY:
            for _ in range(count):
                self.skip_array(self.u32(), self.u64())
        else:
            raise ValueError(f"unknown GGUF value type {etype}")


def read_header(path: Path) -> GGUFHeader:
    """The header of the GGUF at ``path``, checked: magic, version, and that the file holds the
    header and all the tensor data it describes. Raises ModelLoadError saying what is wrong.
    Read once per file version (path, size, modification time) in a process."""
    if not path.is_file():
        raise ModelLoadError(f"GGUF file not found: {path}; check the path")
    try:
        st = path.stat()
    except OSError as e:
        raise ModelLoadError(f"cannot read {path}: {e}") from e
    return _read_cached(str(path.resolve()), st.st_size, st.st_mtime_ns)


@cache
def _read_cached(path: str, size: int, mtime_ns: int) -> GGUFHeader:
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
            if magic != GGUF_MAGIC:
                raise ModelLoadError(
                    f"{path} is not a GGUF file (bad magic {magic!r}, expected {GGUF_MAGIC!r}); "
                    f"the file is corrupt or of another format: {_REDOWNLOAD}"
                )
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                return _parse(path, buf, size)
    except _Truncated:
        raise ModelLoadError(
            f"{path} is not a readable GGUF file, truncated or corrupt: its GGUF header runs "
            f"past the end of the file ({size:,} bytes); the download or copy was cut short: "
            f"{_REDOWNLOAD}"
        ) from None
    except (ValueError, struct.error, OverflowError, MemoryError) as e:
        raise ModelLoadError(
            f"{path} is not a readable GGUF file: its header is corrupt ({e}); {_REDOWNLOAD}"
        ) from None
    except OSError as e:
        raise ModelLoadError(f"cannot read {path}: {e}") from e


def _parse(path: str, buf: mmap.mmap, size: int) -> GGUFHeader:
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    order = "<"
    version = struct.unpack_from("<I", buf, 4)[0] if size >= 8 else 0
    if version and not version & 0xFFFF:  # written on a big-endian machine
        order, version = ">", struct.unpack_from(">I", buf, 4)[0]
    cur = _Walker(buf, size, order)
    cur.u32()
    if version not in (2, 3):
        raise ModelLoadError(
            f"{path} is GGUF version {version}, which llama.cpp does not read (2 or 3 "
            f"expected); convert it again with a recent llama.cpp, or {_REDOWNLOAD}"
        )
    n_tensors, n_kv = cur.u64(), cur.u64()
    metadata: dict[str, Value] = {}
    for _ in range(n_kv):
        key = cur.string()
        value = cur.value(cur.u32())
        if value is not None:
            metadata[key] = value
    n_params = 0
    types: dict[str, int] = {}
    data_end: int | None = 0
    for _ in range(n_tensors):
        cur.string()
        n_dims = cur.u32()
        dims = cur.unpack(f"{n_dims}Q")
        ggml_type, offset = cur.u32(), cur.u64()
        elements = math.prod(int(d) for d in dims)
        n_params += elements
        try:
            qtype = GGMLQuantizationType(ggml_type)
            block, type_size = GGML_QUANT_SIZES[qtype]
        except (ValueError, KeyError):
            types["unknown"] = types.get("unknown", 0) + 1
            data_end = None  # a type newer than the gguf package: llama.cpp will tell
            continue
        types[qtype.name] = types.get(qtype.name, 0) + 1
        if data_end is not None:
            data_end = max(data_end, offset + elements // block * type_size)
    alignment = _int(metadata.get("general.alignment"))
    align = alignment if alignment is not None and alignment > 0 else 32
    if data_end is not None:
        data_end += -(-cur.off // align) * align
        if size < data_end:
            raise ModelLoadError(
                f"{path} is truncated: its header describes {data_end:,} bytes of tensor data "
                f"but the file holds {size:,}; the download or copy was cut short: {_REDOWNLOAD}"
            )
    return GGUFHeader(
        path=path,
        version=version,
        metadata=metadata,
        n_tensors=n_tensors,
        n_params=n_params,
        tensor_types=types,
        data_end=data_end,
        file_size=size,
    )
