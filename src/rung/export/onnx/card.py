"""The files of the ONNX folder besides the graphs: config.json with the card's labels, the
tokenizer's padding facts for ``rung.json``, and README.md."""

from __future__ import annotations

import json
from typing import Any

from rung.export.onnx.source import Source
from rung.models.onnx import FP32_FILE, INT8_FILE

__all__ = ["config_json", "render_readme", "tokenizer_card"]


def tokenizer_card(tokenizer: Any) -> dict[str, Any]:
    pad_id = tokenizer.pad_token_id
    return {
        "pad_token": tokenizer.pad_token,
        "pad_id": int(pad_id) if pad_id is not None else 0,
        "pad_type_id": int(getattr(tokenizer, "pad_token_type_id", 0) or 0),
        "padding_side": tokenizer.padding_side,
    }


def config_json(src: Source) -> dict[str, Any]:
    """The source's config.json with the labels of the card: what `from_pretrained` and the
    Hugging Face hub read for a classifier's labels."""
    config = dict(src.config)
    config["id2label"] = {str(i): label for i, label in enumerate(src.labels)}
    config["label2id"] = {label: i for i, label in enumerate(src.labels)}
    return config


def _fmt_mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def render_readme(card: dict[str, Any], name: str) -> str:
    source = card["source"]
    base = card.get("base") or source["path"]
    rows = [
        f"| `{file}` | {info['precision']} | {_fmt_mb(info['bytes'])} | "
        f"{info['max_abs_logit_difference']:.2g} | {info['label_agreement']:.0%} |"
        for file, info in card["files"].items()
    ]
    return "\n".join(
        [
            "---",
            f"base_model: {json.dumps(str(base).removeprefix('encoder:'))}",
            "library_name: onnx",
            "pipeline_tag: text-classification",
            "tags:",
            "- rung",
            "- onnx",
            "- text-classification",
            *(["- int8"] if INT8_FILE in card["files"] else []),
            "---",
            "",
            f"# {name}",
            "",
            f"The {source['method']} classifier of `{source['path']}` exported to ONNX by "
            "`rung export onnx`, for ONNX Runtime and the `tokenizers` library alone (no "
            "PyTorch).",
            "",
            "## Labels",
            "",
            *(f"{i}. `{label}`" for i, label in enumerate(card["labels"])),
            "",
            "## Files",
            "",
            f"Checked against PyTorch on {card['check']['texts']} texts (max_seq_length "
            f"{card['max_seq_length']}):",
            "",
            "| file | precision | size | largest logit difference | same label |",
            "|---|---|---|---|---|",
            *rows,
            "",
            f"Opset {card['opset']}, exported with torch {card['torch_version']}, checked with "
            f"onnxruntime {card['onnxruntime_version']}.",
            "",
            "## Use it as a rung",
            "",
            "```yaml",
            "models:",
            f"  - onnx:./{name}",
            "```",
            "",
            f"(options: `file: {FP32_FILE}` for the fp32 graph, `threads`, `batch_size`).",
            "",
        ]
    )
