"""The flow backend as its entry point declares it, and helpers to write flow files."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from rung.models import registry

#: one thread: on a machine shared with other work llama.cpp's threads wait on each other
LLAMA_OPTIONS = {"n_threads": 1}
SMOL = "llamacpp:smollm2-135m-instruct"


@contextmanager
def flow_backend() -> Iterator[None]:
    """Until the installed metadata declares the flow backend (pyproject's rung.backends),
    add it as that entry point would."""
    eps = registry._entry_points()
    if "flow" in eps:
        yield
        return
    eps["flow"] = EntryPoint(name="flow", value="rung.flows.model:FlowModel", group=registry.GROUP)
    try:
        yield
    finally:
        eps.pop("flow", None)


@pytest.fixture(autouse=True)
def _flow_backend() -> Iterator[None]:
    with flow_backend():
        yield


def write_flow(folder: Path, text: str, name: str = "flow.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path
