"""GGUF headers read with the gguf package: the real bundled files, and small files written with
GGUFWriter to show that a missing key stays unknown."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest

from rung.catalog.cards import card_for
from rung.catalog.devices import get_device
from rung.catalog.gguf_meta import read_gguf
from rung.catalog.memory import fit
from rung.errors import ModelLoadError
from rung.models.bundled import gemma3_270m_gguf, smollm2_135m_gguf


def _write(path: Path, build: object) -> Path:
    writer = gguf.GGUFWriter(path, "llama")
    build(writer)  # type: ignore[operator]
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_smollm2_header() -> None:
    f = read_gguf(smollm2_135m_gguf())
    assert f.architecture == "llama"
    assert f.params == 134_515_008  # the sum of its tensors' elements
    assert f.n_layers == 30
    assert f.context_length == 8192
    assert (f.n_heads, f.n_kv_heads, f.embedding_length) == (9, 3, 576)
    assert f.file_type == "Q4_1"
    assert f.license == "apache-2.0"
    assert f.file_size_bytes == smollm2_135m_gguf().stat().st_size


def test_gemma_header() -> None:
    f = read_gguf(gemma3_270m_gguf())
    assert f.architecture == "gemma3"
    assert f.params == 268_098_176
    assert (f.n_layers, f.context_length) == (18, 32768)
    assert (f.n_heads, f.n_kv_heads, f.key_length, f.value_length) == (4, 1, 256, 256)
    assert f.sliding_window == 512
    assert f.file_type == "Q4_K_M"
    assert f.license == "gemma"


def test_fast_reader_agrees_with_the_package_reader() -> None:
    """The header reader skips the vocabulary; every other key must read the same."""
    path = smollm2_135m_gguf()
    plain = gguf.GGUFReader(path)
    fast = read_gguf(path)
    arch = plain.fields["general.architecture"].contents()
    assert fast.n_layers == plain.fields[f"{arch}.block_count"].contents()
    assert fast.context_length == plain.fields[f"{arch}.context_length"].contents()
    assert fast.n_kv_heads == plain.fields[f"{arch}.attention.head_count_kv"].contents()
    assert fast.params == sum(int(t.n_elements) for t in plain.tensors)


def test_missing_metadata_stays_unknown(tmp_path: Path) -> None:
    """A GGUF with an architecture and nothing else: every figure is None, never invented."""
    path = _write(tmp_path / "bare.gguf", lambda w: None)
    f = read_gguf(path)
    assert f.architecture == "llama"
    for name in ("params", "context_length", "n_layers", "n_heads", "n_kv_heads", "file_type"):
        assert getattr(f, name) is None, name
    assert f.license is None

    card = card_for(f"llamacpp:{path}")
    assert card.params is None and card.quantization is None and card.context_length is None
    assert card.kv_values_per_token is None
    mem = card.memory(4096)
    assert mem.weights_bytes == path.stat().st_size  # the file size is a fact
    assert mem.kv_cache_bytes is None and mem.total_bytes is None
    assert fit(card, get_device("phone"), 4096).fits is None


def test_partial_metadata_and_tensors(tmp_path: Path) -> None:
    def build(w: gguf.GGUFWriter) -> None:
        w.add_block_count(2)
        w.add_context_length(1024)
        w.add_file_type(gguf.LlamaFileType.ALL_F32)
        w.add_tensor("a", np.zeros((4, 8), dtype=np.float32))
        w.add_tensor("b", np.zeros((3,), dtype=np.float32))

    f = read_gguf(_write(tmp_path / "partial.gguf", build))
    assert f.params == 35
    assert (f.n_layers, f.context_length, f.file_type) == (2, 1024, "F32")
    assert f.n_heads is None and f.n_kv_heads is None
    assert card_for(f"llamacpp:{tmp_path / 'partial.gguf'}").memory(512).kv_cache_bytes is None


def test_long_arrays_are_skipped_and_later_keys_still_read(tmp_path: Path) -> None:
    tokens = [f"tok{i}" for i in range(3000)]

    def build(w: gguf.GGUFWriter) -> None:
        w.add_token_list(tokens)
        w.add_token_scores([0.5] * 3000)
        w.add_block_count(4)
        w.add_head_count(8)
        w.add_head_count_kv([2, 2, 4, 4])  # a KV head count per layer
        w.add_embedding_length(256)

    path = _write(tmp_path / "vocab.gguf", build)
    f = read_gguf(path)
    assert f.n_layers == 4 and f.n_heads == 8 and f.embedding_length == 256
    assert f.n_kv_heads_per_layer == (2, 2, 4, 4)
    card = card_for(f"llamacpp:{path}")
    assert card.kv_values_per_token == (2 + 2 + 4 + 4) * (32 + 32)  # head size 256 / 8


def test_not_a_gguf(tmp_path: Path) -> None:
    path = tmp_path / "model.gguf"
    path.write_bytes(b"not a model at all")
    with pytest.raises(ModelLoadError, match="not a GGUF file"):
        read_gguf(path)
    truncated = tmp_path / "cut.gguf"
    truncated.write_bytes(smollm2_135m_gguf().read_bytes()[:2000])
    with pytest.raises(ModelLoadError, match="not a readable GGUF"):
        read_gguf(truncated)
