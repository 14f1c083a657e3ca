"""Folders that classify with a head trained ahead of time (``rung tune``, or any Hugging Face
``*ForSequenceClassification`` folder): what they say about themselves, and their linear head.

A folder written by ``rung tune`` (it holds ``rung.json``), or any Hugging Face folder whose
``config.json`` names a ``*ForSequenceClassification`` architecture, is a *tuned* encoder: it
classifies with its own trained head and ``needs_training`` is False. Its head is one of two:

- ``sequence``: a transformers sequence classifier (softmax over its logits), as ``rung tune
  --pooling cls`` writes it or any ``*ForSequenceClassification`` folder;
- ``linear``: a sentence-transformers folder plus ``head.safetensors``, a linear head (``coef``
  [labels, dimension] and ``intercept`` [labels], rows in label order) over its sentence
  embeddings, softmax on top: ``rung tune``'s default full fine-tune (mean pooling, trained end
  to end) and its setfit method (a logistic regression) both write this.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from rung.errors import ModelLoadError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["CARD_FILE", "HEAD_FILE", "TunedFolder", "read_head", "read_json_object", "read_tuned"]

#: the machine-readable model card of a folder written by ``rung tune``
CARD_FILE = "rung.json"
#: the linear head (``coef``, ``intercept``) of a folder whose head is "linear"
HEAD_FILE = "head.safetensors"


@dataclass(frozen=True)
class TunedFolder:
    """What a fine-tuned classifier folder says about itself (``rung.json``, or the
    ``id2label`` of a plain Hugging Face sequence classifier)."""

    method: Literal["full", "setfit"]
    labels: tuple[str, ...]
    base: str | None = None
    max_seq_length: int | None = None
    #: a linear head was trained on unit-length embeddings
    normalize: bool = True
    card: dict[str, Any] = field(default_factory=dict)

    @property
    def head(self) -> Literal["sequence", "linear"]:
        """How the folder classifies: a transformers sequence classifier, or a sentence
        embedding and ``head.safetensors``."""
        if self.method == "setfit" or self.card.get("head") == "linear":
            return "linear"
        return "sequence"


def _bad_card(path: Path, why: str) -> ModelLoadError:
    return ModelLoadError(
        f"{path} is not a valid rung model card: {why}; write the folder again with `rung tune`, "
        f"or delete {path.name} to use the folder as a plain encoder"
    )


def read_tuned(folder: Path) -> TunedFolder | None:
    """The tuned classifier in ``folder``, or None when it holds a plain encoder."""
    card_path = folder / CARD_FILE
    if card_path.is_file():
        try:
            card = json.loads(card_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise _bad_card(card_path, f"unreadable JSON ({e})") from e
        if not isinstance(card, dict):
            raise _bad_card(card_path, "not a JSON object")
        method = card.get("method")
        labels = card.get("labels")
        if method == "onnx":
            raise ModelLoadError(
                f"{folder} holds an ONNX export (rung export onnx), which the encoder backend "
                f"does not run; use it as onnx:{folder}"
            )
        if method not in ("full", "setfit"):
            raise _bad_card(card_path, f"method {method!r} is neither 'full' nor 'setfit'")
        if (
            not isinstance(labels, list)
            or len(labels) < 2
            or not all(isinstance(x, str) for x in labels)
        ):
            raise _bad_card(card_path, "labels must be a list of at least two strings")
        if (method == "setfit" or card.get("head") == "linear") and not (
            folder / HEAD_FILE
        ).is_file():
            raise ModelLoadError(
                f"{folder} is a classifier with a linear head but has no {HEAD_FILE}; copy the "
                "whole folder that `rung tune` wrote"
            )
        max_len = card.get("max_seq_length")
        return TunedFolder(
            method=method,
            labels=tuple(labels),
            base=str(card["base"]) if card.get("base") else None,
            max_seq_length=int(max_len) if isinstance(max_len, int) else None,
            normalize=bool(card.get("normalize", True)),
            card=card,
        )
    config = read_json_object(folder / "config.json")
    architectures = config.get("architectures") or []
    if any(str(a).endswith("ForSequenceClassification") for a in architectures):
        id2label = config.get("id2label") or {}
        try:
            labels = tuple(str(id2label[k]) for k in sorted(id2label, key=int))
        except (ValueError, TypeError) as e:
            raise ModelLoadError(
                f"{folder / 'config.json'}: id2label keys must be class indices ({e}); fix the "
                "config or fine-tune the folder again with `rung tune`"
            ) from e
        if len(labels) < 2:
            raise ModelLoadError(
                f"{folder} is a sequence classifier with fewer than two labels in id2label; "
                "fine-tune it on your labels with `rung tune`"
            )
        return TunedFolder(method="full", labels=labels)
    return None


def read_json_object(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; empty when the file is missing, unreadable or not an
    object (a model folder's optional config files)."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def read_head(path: Path, tuned: TunedFolder) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    import numpy as np
    from safetensors.numpy import load_file

    try:
        tensors = load_file(str(path))
        coef = np.asarray(tensors["coef"], dtype=np.float64)
        intercept = np.asarray(tensors["intercept"], dtype=np.float64)
    except Exception as e:  # the boundary: a truncated or foreign file
        raise ModelLoadError(
            f"cannot read the classifier head {path}: {type(e).__name__}: {e}; write the folder "
            "again with `rung tune`"
        ) from e
    n = len(tuned.labels)
    if coef.ndim != 2 or coef.shape[0] != n or intercept.shape != (n,):
        raise ModelLoadError(
            f"{path}: coef {tuple(coef.shape)} and intercept {tuple(intercept.shape)} do not "
            f"match the {n} labels of the card; write the folder again with `rung tune`"
        )
    return coef, intercept
