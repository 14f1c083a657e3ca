"""A test double for what is not under test: a rung backend whose native code crashes.

The thing under test is how rung survives a rung whose process dies by a signal (the probe,
compare going on without it, serve refusing it). The double is a real plugin, installed the way
a third-party backend is: a ``segfault_double`` distribution with a ``rung.backends`` entry
point, in a folder put on ``PYTHONPATH`` (so child processes find it) and on ``sys.path``.

``segfault:on-load`` dies in ``load()``, ``segfault:on-answer`` in ``classify()``, by a real
SIGSEGV (reading address 0 through ctypes); ``segfault:never`` answers the first label.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rung.models import registry

__all__ = ["install_segfault_plugin"]

MODULE = '''
import ctypes
from typing import ClassVar

from rung.models.base import Model, Prediction


class SegfaultingModel(Model):
    """Dies by SIGSEGV where its name says (a stand-in for a llama.cpp or torch crash)."""

    provider: ClassVar[str] = "segfault"
    crash_hint: ClassVar[str] = "this double always crashes; remove it from the spec"

    def load(self) -> None:
        if self.name == "on-load":
            ctypes.string_at(0)

    async def classify(self, requests):
        if self.name == "on-answer":
            ctypes.string_at(0)
        return [Prediction(label=r.labels[0], scores={}, confidence=1.0) for r in requests]
'''


def install_segfault_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Install the double for one test (monkeypatch undoes the paths); returns its folder.
    Call ``registry._entry_points.cache_clear()`` when the test is done."""
    folder = tmp_path / "plugin"
    dist = folder / "segfault_double-0.1.dist-info"
    dist.mkdir(parents=True)
    (folder / "segfault_backend.py").write_text(MODULE, encoding="utf-8")
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: segfault-double\nVersion: 0.1\n", encoding="utf-8"
    )
    (dist / "entry_points.txt").write_text(
        "[rung.backends]\nsegfault = segfault_backend:SegfaultingModel\n", encoding="utf-8"
    )
    path = os.pathsep.join(p for p in (str(folder), os.environ.get("PYTHONPATH")) if p)
    monkeypatch.setenv("PYTHONPATH", path)
    monkeypatch.syspath_prepend(str(folder))
    registry._entry_points.cache_clear()
    return folder
