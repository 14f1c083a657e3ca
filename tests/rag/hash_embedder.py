"""A test double for what is not under test: an embedding rung that makes vectors instantly
(from a hash of each text), for the tests about what happens around embedding (an index build
killed half-way) that need thousands of chunks written in seconds.

Installed as a real plugin, the way a third-party backend is (as tests/segfault_plugin.py
does): a ``hash_embedder_double`` distribution with a ``rung.backends`` entry point, in a folder
put on ``PYTHONPATH`` (so child processes find it) and on ``sys.path``. ``hashvec:32`` makes
32-dimensional vectors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rung.models import registry

__all__ = ["install_hash_embedder"]

MODULE = '''
import hashlib
from typing import ClassVar

import numpy as np

from rung.models.base import Embeddings, Model


class HashEmbedderDouble(Model):
    """Vectors from the SHA-256 of each text: the same text, the same vector; no meaning."""

    provider: ClassVar[str] = "hashvec"
    can_classify: ClassVar[bool] = False
    can_embed: ClassVar[bool] = True
    in_process: ClassVar[bool] = False

    def load(self):
        pass

    async def classify(self, requests):
        raise NotImplementedError("the hash embedder double only embeds")

    async def embed(self, texts):
        dim = int(self.name)
        rows = []
        for text in texts:
            digest = hashlib.sha256(text.encode()).digest() * (dim // 32 + 1)
            rows.append(np.frombuffer(digest[:dim], dtype=np.uint8).astype(np.float32) - 127.5)
        return Embeddings(np.stack(rows), [len(t.split()) for t in texts])
'''


def install_hash_embedder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "hash-plugin"
    dist = folder / "hash_embedder_double-0.1.dist-info"
    dist.mkdir(parents=True)
    (folder / "hash_embedder_backend.py").write_text(MODULE, encoding="utf-8")
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: hash-embedder-double\nVersion: 0.1\n", encoding="utf-8"
    )
    (dist / "entry_points.txt").write_text(
        "[rung.backends]\nhashvec = hash_embedder_backend:HashEmbedderDouble\n", encoding="utf-8"
    )
    path = os.pathsep.join(p for p in (str(folder), os.environ.get("PYTHONPATH")) if p)
    monkeypatch.setenv("PYTHONPATH", path)
    monkeypatch.syspath_prepend(str(folder))
    registry._entry_points.cache_clear()
    return folder
