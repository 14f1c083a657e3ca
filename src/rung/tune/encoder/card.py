"""The model cards of a tuned classifier folder: ``rung.json`` for machines, ``README.md``
(Hugging Face model-card style) for people. The folder itself is written through
``rung.export.folder`` (beside ``out``, then renamed into place).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import rung
from rung.models.encoder import CARD_FILE

__all__ = ["build_card", "render_readme", "write_cards"]

#: hub ids of the bundled names, for the README's base_model (the Hub links it)
HUB_IDS = {"encoder:minilm-l6": "sentence-transformers/all-MiniLM-L6-v2"}


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
