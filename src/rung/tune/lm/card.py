"""The two model cards of a LoRA folder: ``rung.json`` for machines, ``README.md`` (Hugging Face
model-card style) for people; the numbers are the same in both."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import rung
from rung.export.gguf import GgufExport
from rung.models.transformers import MERGED_DIR, ModelSource
from rung.tune.lm.base import base_path
from rung.tune.lm.options import LoraOptions
from rung.tune.lm.train import LOSS_SAMPLE, Trained

__all__ = ["CARD_FILE", "build_card", "render_readme", "write_cards"]

CARD_FILE = "rung.json"


def build_card(
    *,
    base_id: str,
    source: ModelSource,
    options: LoraOptions,
    data_info: dict[str, Any] | None,
    n_train: int,
    n_val: int,
    truncated: int,
    chat_template: bool,
    system: str | None,
    trained: Trained,
    before: float,
    after: float,
    val_before: float | None,
    train_seconds: float,
    gguf: GgufExport | None,
) -> dict[str, Any]:
    def r(x: float | None) -> float | None:
        return None if x is None else round(x, 5)

    hyper = options.model_dump(mode="json", exclude={"device", "threads", "merge"})
    data = dict(data_info or {})
    data.update({"n_train": n_train, "n_validation": n_val, "truncated": truncated})
    return {
        "format": 1,
        "kind": "causal-lm",
        "method": "lora",
        "base": base_id,
        "base_source": {"kind": source.kind, "path": base_path(source)},
        "prompt": {"template": "chat" if chat_template else "plain", "system": system},
        "seed": options.seed,
        "hyperparameters": hyper,
        "data": data,
        "steps": trained.steps,
        "epochs": trained.epochs,
        "stopped_early": trained.stopped_early,
        "train_loss": r(trained.train_loss),
        "train_loss_before": r(before),
        "train_loss_after": r(after),
        "validation_loss_before": r(val_before),
        "validation_loss": r(trained.validation_loss),
        "history": trained.history,
        "train_seconds": round(train_seconds, 3),
        "files": {
            "adapter": "adapter_model.safetensors",
            "merged": f"{MERGED_DIR}/" if options.merge else None,
            "gguf": gguf.path.name if gguf is not None else None,
        },
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "rung_version": rung.__version__,
    }


def _fig(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def render_readme(card: dict[str, Any], name: str) -> str:
    """A Hugging Face style model card; the numbers are the ones in rung.json."""
    base = str(card["base"])
    source = card.get("base_source") or {}
    base_model = source.get("path") if source.get("kind") == "hub" else base
    data, hyper, files = card["data"], card["hyperparameters"], card["files"]
    prompt = card.get("prompt") or {}
    lines = [
        "---",
        f"base_model: {json.dumps(base_model)}",
        "library_name: peft",
        "pipeline_tag: text-generation",
        "tags:",
        "- rung",
        "- lora",
        "- causal-lm",
        "---",
        "",
        f"# {name}",
        "",
        f"LoRA adapters (rank {hyper['rank']}, alpha {hyper['alpha']}) on `{base}`, trained "
        "with `rung tune-lm` on prompt/completion pairs; the loss was taken on the completion "
        "tokens only.",
        "",
        "## Data",
        "",
        f"- file: `{data.get('path', '-')}`"
        + (f" (sha256 `{str(data['sha256'])[:16]}…`)" if data.get("sha256") else ""),
        f"- examples: {data['n_train']} train, {data['n_validation']} validation"
        + (
            f"; {data['truncated']} cut to {hyper['max_length']} tokens"
            if data.get("truncated")
            else ""
        ),
        f"- prompt: the base's {'chat template' if prompt.get('template') == 'chat' else 'plain format'}"
        + (f", system message `{prompt['system']}`" if prompt.get("system") else ""),
        "",
        "## Results (mean cross-entropy per completion token)",
        "",
        "| | before | after |",
        "|---|---|---|",
        f"| training examples (up to {LOSS_SAMPLE}) | {_fig(card['train_loss_before'])} "
        f"| {_fig(card['train_loss_after'])} |",
        f"| validation | {_fig(card['validation_loss_before'])} | {_fig(card['validation_loss'])} |",
        "",
        f"{card['steps']} steps ({card['epochs']:g} epoch{'' if card['epochs'] == 1 else 's'}) in {card['train_seconds']:.0f} s"
        + (
            "; stopped early, the adapter of the lowest validation loss kept."
            if card["stopped_early"]
            else "."
        ),
        "",
        "## Hyperparameters",
        "",
        *(f"- {key}: {value}" for key, value in hyper.items()),
        "",
        "## Use it",
        "",
        f"- as a rung: `transformers:<path to {name}>` (the base is loaded and the adapter "
        "merged into it"
        + ("; `merged/` is used when present" if files.get("merged") else "")
        + ")",
    ]
    if files.get("gguf"):
        lines.append(f"- with llama.cpp: `llamacpp:<path to {name}>/{files['gguf']}`")
    if source.get("kind") != "gguf":
        lines += [
            "- with peft: `AutoPeftModelForCausalLM.from_pretrained(<path>)`",
        ]
    lines.append("")
    return "\n".join(lines)


def write_cards(folder: Path, card: dict[str, Any], name: str) -> None:
    """rung.json and README.md into ``folder``; ``name`` is what the folder will be called."""
    (folder / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    (folder / "README.md").write_text(render_readme(card, name), encoding="utf-8")
