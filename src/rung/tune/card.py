"""The tuned classifier folder: the refusal to overwrite what is there, the write beside ``out``
then rename into place, and the two model cards: ``rung.json`` for machines, ``README.md``
(Hugging Face model-card style) for people.

A run writes into a hidden folder next to ``out`` (``.<name>.partial-*``) and renames it to
``out`` only once every file is there, so an interrupted or failed run leaves the old model (or
nothing) at ``out``, never half a folder. ``--force`` swaps an existing model out only then.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import rung
from rung.errors import RunError
from rung.models.encoder import CARD_FILE, HEAD_FILE

__all__ = [
    "CARD_FILE",
    "HEAD_FILE",
    "build_card",
    "check_out",
    "file_sha256",
    "publish",
    "render_readme",
    "staging",
    "write_cards",
]

#: files that make a folder a model (what --force may replace)
MODEL_FILES = (CARD_FILE, "config.json", "modules.json", "model.safetensors", HEAD_FILE)
#: hub ids of the bundled names, for the README's base_model (the Hub links it)
HUB_IDS = {"encoder:minilm-l6": "sentence-transformers/all-MiniLM-L6-v2"}


def check_out(out: Path, force: bool) -> None:
    """Refuse an ``out`` that would lose something: a file, a folder with other content, or a
    model (unless ``force``)."""
    if not out.exists():
        return
    if not out.is_dir():
        raise RunError(f"{out} is a file; give --out the path of a folder for the model")
    if not any(out.iterdir()):
        return
    if any((out / name).exists() for name in MODEL_FILES):
        if force:
            return
        raise RunError(
            f"{out} already holds a model; pass --force to replace it (the old one is kept "
            "until the new one is complete), or choose another --out"
        )
    raise RunError(
        f"{out} is not empty and holds no model; give --out a new or empty folder (--force "
        "replaces a model folder only, never other files)"
    )


@contextmanager
def staging(out: Path) -> Iterator[Path]:
    """A fresh hidden folder beside ``out`` (same file system, so the final rename is atomic);
    removed on the way out, whatever happened."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    except OSError as e:
        raise RunError(f"cannot write beside {out}: {e}; choose a writable --out") from e
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def publish(tmp: Path, out: Path) -> None:
    """Rename the complete folder ``tmp`` to ``out``; an existing ``out`` is moved aside first
    and deleted only after the rename succeeded."""
    old: Path | None = None
    try:
        if out.exists():
            old = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
            out.rename(old)
        tmp.rename(out)
    except OSError as e:
        if old is not None and not out.exists():
            old.rename(out)
        raise RunError(f"cannot move the new model into {out}: {e}; check the folder") from e
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def build_card(
    *,
    method: str,
    base: str,
    labels: list[str],
    max_seq_length: int,
    seed: int,
    hyperparameters: dict[str, Any],
    data: dict[str, Any],
    validation: dict[str, Any],
    test: dict[str, Any] | None,
    train_seconds: float,
    best_epoch: float,
    history: list[dict[str, Any]],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    card: dict[str, Any] = {
        "format": 1,
        "kind": "classifier",
        "method": method,
        "base": base,
        "labels": labels,
        "max_seq_length": max_seq_length,
        "seed": seed,
        "hyperparameters": hyperparameters,
        "data": data,
        "validation": validation,
        "test": test,
        "train_seconds": round(train_seconds, 3),
        "best_epoch": best_epoch,
        "history": history,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "rung_version": rung.__version__,
    }
    card.update(extra or {})
    return card


def write_cards(folder: Path, card: dict[str, Any], name: str) -> None:
    """rung.json and README.md into ``folder``; ``name`` is what the folder will be called."""
    (folder / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    (folder / "README.md").write_text(render_readme(card, name), encoding="utf-8")


def _figure(value: float | None, ci: list[float] | None = None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def render_readme(card: dict[str, Any], name: str) -> str:
    """A Hugging Face style model card: YAML front matter, then what the model is and how it
    scored. The numbers are the ones in rung.json."""
    base = str(card["base"])
    base_model = HUB_IDS.get(base) or base.removeprefix("encoder:")
    full = card["method"] == "full"
    sequence = full and card.get("head", "sequence") == "sequence"
    library = "transformers" if sequence else "sentence-transformers"
    tags = ["rung", "text-classification", "fine-tuned" if full else "setfit"]
    test = card.get("test")
    val = card["validation"]
    data = card["data"]
    hyper = card["hyperparameters"]
    front = [
        "---",
        f"base_model: {json.dumps(base_model)}",
        f"library_name: {library}",
        "pipeline_tag: text-classification",
        "tags:",
        *(f"- {t}" for t in tags),
        "metrics:",
        "- accuracy",
        "- f1",
        "---",
    ]
    if sequence:
        how = (
            "all weights of the encoder and a new classification head trained with "
            "cross-entropy (a standard Hugging Face sequence classifier)"
        )
    elif full:
        how = (
            "all weights of the encoder and a new linear head over the mean of its token states, "
            "trained together with cross-entropy: a sentence-transformers model whose sentence "
            "embedding, times `head.safetensors` (`coef`, `intercept`), gives the logits"
        )
    else:
        how = (
            "the sentence encoder fine-tuned contrastively on pairs of examples (SetFit), then "
            "a logistic-regression head (`head.safetensors`) on its sentence embeddings"
        )
    lines = [
        *front,
        "",
        f"# {name}",
        "",
        f"A text classifier fine-tuned with `rung tune` from `{base}`: {how}.",
        "",
        "## Labels",
        "",
        *(f"{i}. `{label}`" for i, label in enumerate(card["labels"])),
        "",
        "## Data",
        "",
        f"- training file: `{data.get('path', '?')}` (sha256 `{str(data.get('sha256', '?'))[:16]}…`)",
        f"- examples: {data.get('n_train', '?')} train, {data.get('n_validation', '?')} "
        f"validation, {data.get('n_test', 0)} test",
        "",
        "## Results",
        "",
        "| split | accuracy [95% CI] | macro-F1 [95% CI] |",
        "|---|---|---|",
        f"| validation | {_figure(val.get('accuracy'), val.get('accuracy_ci'))} "
        f"| {_figure(val.get('macro_f1'), val.get('macro_f1_ci'))} |",
    ]
    if test:
        lines.append(
            f"| test | {_figure(test.get('accuracy'), test.get('accuracy_ci'))} "
            f"| {_figure(test.get('macro_f1'), test.get('macro_f1_ci'))} |"
        )
    lines += [
        "",
        f"Training took {card['train_seconds']:.0f} s; the weights kept are those of epoch "
        f"{card['best_epoch']:g}, the best on the validation split.",
        "",
        "## Hyperparameters",
        "",
        *(f"- {key}: {value}" for key, value in hyper.items()),
        "",
        "## Use it as a rung",
        "",
        "```yaml",
        "models:",
        f"  - encoder:./{name}",
        "```",
        "",
        f"or `rung compare` with the model id `encoder:<path to {name}>`.",
    ]
    if sequence:
        lines += [
            "",
            "With transformers alone:",
            "",
            "```python",
            "from transformers import pipeline",
            f'classify = pipeline("text-classification", model="{name}")',
            "```",
        ]
    lines.append("")
    return "\n".join(lines)
