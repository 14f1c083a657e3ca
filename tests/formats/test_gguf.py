"""The one GGUF header reader, on files written with the gguf package's own GGUFWriter and on
the bundled models: what the llamacpp backend and the catalog both rely on."""

from __future__ import annotations

import struct
import time
from pathlib import Path

import gguf
import numpy as np
import pytest

from rung.errors import ModelLoadError
from rung.formats.gguf import _read_cached, read_header
from rung.models.bundled import gemma3_270m_gguf, smollm2_135m_gguf


def _write(path: Path, endianess: gguf.GGUFEndian = gguf.GGUFEndian.LITTLE) -> Path:
    writer = gguf.GGUFWriter(path, "llama", endianess=endianess)
    writer.add_block_count(2)
    writer.add_context_length(1024)
    writer.add_head_count_kv([1, 2])
    writer.add_token_list([f"tok{i}" for i in range(2000)])  # a long array: skipped
    writer.add_name("tiny")
    writer.add_tensor("a", np.zeros((4, 8), dtype=np.float32))
    writer.add_tensor("b", np.zeros((3,), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_a_small_file_reads_whole(tmp_path: Path) -> None:
    h = read_header(_write(tmp_path / "tiny.gguf"))
    assert (h.version, h.architecture, h.context_length) == (3, "llama", 1024)
    assert h.get("general.name") == "tiny"
    assert h.arch_value("attention.head_count_kv") == (1, 2)  # short arrays are kept
    assert "tokenizer.ggml.tokens" not in h.metadata  # long arrays are not
    assert (h.n_tensors, h.n_params, h.tensor_types) == (2, 35, {"F32": 2})
    assert h.data_end is not None and h.data_end <= h.file_size


def test_big_endian_files_read_the_same(tmp_path: Path) -> None:
    little = read_header(_write(tmp_path / "le.gguf"))
    big = read_header(_write(tmp_path / "be.gguf", gguf.GGUFEndian.BIG))
    assert big.metadata == little.metadata
    assert (big.n_params, big.data_end, big.tensor_types) == (
        little.n_params,
        little.data_end,
        little.tensor_types,
    )


def test_a_tensor_type_newer_than_the_package_is_counted_not_refused(tmp_path: Path) -> None:
    """llama.cpp may know a type the gguf package does not yet: the header still reads, the
    tensor is counted as unknown, and the data size is left for llama.cpp to judge."""
    path = _write(tmp_path / "new-type.gguf")
    data = bytearray(path.read_bytes())
    # The tensor table entry of "b": name, n_dims, dims, then its type (uint32).
    at = data.index(b"\x01\x00\x00\x00\x00\x00\x00\x00b") + 9
    n_dims = struct.unpack_from("<I", data, at)[0]
    type_at = at + 4 + 8 * n_dims
    assert struct.unpack_from("<I", data, type_at)[0] == gguf.GGMLQuantizationType.F32
    struct.pack_into("<I", data, type_at, 250)
    path.write_bytes(bytes(data))
    h = read_header(path)
    assert h.tensor_types == {"F32": 1, "unknown": 1}
    assert h.n_params == 35 and h.data_end is None


def test_bad_version_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path / "v9.gguf")
    data = bytearray(path.read_bytes())
    struct.pack_into("<I", data, 4, 9)
    path.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match=r"GGUF version 9, which llama\.cpp does not read"):
        read_header(path)


def test_missing_and_tiny_files(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="GGUF file not found"):
        read_header(tmp_path / "nowhere.gguf")
    (tmp_path / "empty.gguf").write_bytes(b"")
    with pytest.raises(ModelLoadError, match="not a GGUF file"):
        read_header(tmp_path / "empty.gguf")
    (tmp_path / "magic.gguf").write_bytes(b"GGUF")
    with pytest.raises(ModelLoadError, match="truncated or corrupt: its GGUF header runs past"):
        read_header(tmp_path / "magic.gguf")


def test_a_new_version_of_a_file_is_read_again(tmp_path: Path) -> None:
    path = _write(tmp_path / "m.gguf")
    assert read_header(path).file_size == path.stat().st_size
    path.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(ModelLoadError):
        read_header(path)


@pytest.mark.parametrize("locate", [smollm2_135m_gguf, gemma3_270m_gguf])
def test_the_vocabulary_is_skipped_quickly(locate: object) -> None:
    """Gemma's 262k-token vocabulary is walked by its lengths, never decoded: the old reader
    that decoded it took seconds; this takes tens of milliseconds (1 s is a loose bound for
    a busy machine)."""
    path: Path = locate()  # type: ignore[operator]
    st = path.stat()
    started = time.perf_counter()
    h = _read_cached.__wrapped__(str(path), st.st_size, st.st_mtime_ns)
    assert time.perf_counter() - started < 1.0
    assert h.data_end is not None and h.data_end <= h.file_size
    assert "tokenizer.ggml.tokens" not in h.metadata
