"""What ``rung export onnx`` takes: a classifier folder written by ``rung tune`` (either head),
read and checked before anything is loaded or written."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rung.errors import ModelLoadError, ModelNotFoundError, RunError
from rung.export.folder import check_out
from rung.models.encoder import HEAD_FILE, read_json_object, read_tuned
from rung.models.onnx import CARD_FILE

__all__ = ["Source", "check_target", "read_source"]


@dataclass(frozen=True)
class Source:
    """A classifier folder of ``rung tune``, read and checked."""

    path: Path
    method: Literal["full", "setfit"]
    head: Literal["sequence", "linear"]
    labels: tuple[str, ...]
    card: dict[str, Any]
    config: dict[str, Any]
    max_seq_length: int | None


def read_source(source: Path) -> Source:
    """The tuned classifier in ``source``, or an error that says why it is not one."""
    if not source.exists():
        raise ModelNotFoundError(
            f"model folder not found: {source}; give the folder `rung tune` wrote"
        )
    if not source.is_dir():
        raise ModelLoadError(
            f"{source} is a file; give the folder `rung tune` wrote (with config.json and "
            f"{CARD_FILE})"
        )
    tuned = read_tuned(source)  # raises on a broken rung.json
    config = read_json_object(source / "config.json")
    tune_hint = (
        f"fine-tune it first with `rung tune DATA --base encoder:{source} --out DIR`, then "
        "export DIR"
    )
    if tuned is None:
        kind = ", ".join(str(a) for a in config.get("architectures") or [])
        if config or (source / "modules.json").is_file():
            raise ModelLoadError(
                f"{source} holds no classifier head: it is a base encoder "
                f"({kind or 'a sentence-transformers model'}), not a tuned classifier; "
                f"{tune_hint}"
            )
        raise ModelLoadError(
            f"{source} is not a model folder (it has no config.json or {CARD_FILE}); give the "
            "folder `rung tune` wrote"
        )
    if tuned.card.get("kind", "classifier") != "classifier":
        raise ModelLoadError(
            f"{source} is a {tuned.card.get('kind')} model, not a classifier; export takes a "
            "folder written by `rung tune`"
        )
    if tuned.head == "sequence":
        architectures = [str(a) for a in config.get("architectures") or []]
        if not any(a.endswith("ForSequenceClassification") for a in architectures):
            raise ModelLoadError(
                f"{source / 'config.json'} names no *ForSequenceClassification architecture "
                f"({', '.join(architectures) or 'none'}), so the folder holds no classifier "
                f"head; {tune_hint}"
            )
        id2label = config.get("id2label") or {}
        try:
            head = tuple(str(id2label[k]) for k in sorted(id2label, key=int))
        except (ValueError, TypeError):
            head = ()
        if head != tuned.labels:
            raise ModelLoadError(
                f"{source}: the classifier's id2label ({', '.join(head) or 'none'}) does not "
                f"match the labels of {CARD_FILE} ({', '.join(tuned.labels)}); write the folder "
                "again with `rung tune`"
            )
    elif not (source / HEAD_FILE).is_file():  # read_tuned checks it; here for the type checker
        raise ModelLoadError(f"{source} is a classifier with a linear head but no {HEAD_FILE}")
    return Source(
        path=source,
        method=tuned.method,
        head=tuned.head,
        labels=tuned.labels,
        card=tuned.card,
        config=config,
        max_seq_length=tuned.max_seq_length,
    )


def check_target(source: Path, out: Path, force: bool) -> None:
    if out.resolve() == source.resolve():
        raise RunError(f"--out {out} is the source folder; give the ONNX rung a folder of its own")
    check_out(out, force)
