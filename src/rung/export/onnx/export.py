"""``export_onnx``: trace, quantize, check each graph against PyTorch, write the folder."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import rung
from rung.errors import ConfigurationError, MissingDependencyError
from rung.export.folder import publish, staging
from rung.export.onnx.card import config_json, render_readme, tokenizer_card
from rung.export.onnx.source import check_target, read_source
from rung.export.onnx.trace import load, quiet, reference
from rung.models.base import softmax
from rung.models.onnx import CARD_FILE, FP32_FILE, INT8_FILE, encode, make_tokenizer

__all__ = [
    "CHECK_TEXTS",
    "DEFAULT_OPSET",
    "FP32_FILE",
    "INT8_FILE",
    "ExportResult",
    "GraphCheck",
    "export_onnx",
]

INSTALL = "pip install 'rung[onnx,tune]'"
DEFAULT_OPSET = 17
#: the TorchScript exporter's range: 14 brings the attention ops, 20 is its last
OPSETS = range(14, 21)
QUANTIZATION = {
    "method": "dynamic",
    "weights": "int8 (QInt8), per channel, reduce_range",
    "activations": "uint8, quantized per batch at run time",
    "onnxruntime_function": "onnxruntime.quantization.quantize_dynamic",
}
#: texts the export is checked on: short and long, numbers, punctuation, non-ASCII, one longer
#: than any max_seq_length (truncation), all in one padded batch
CHECK_TEXTS = (
    "Operating profit rose to EUR 13.1 mn from EUR 8.7 mn in the corresponding period in 2007.",
    "The company did not disclose the price.",
    "Sales fell.",
    "Finnish Talentum reports its operating profit decreased to EUR 20.5 mn in 2005 from EUR "
    "9.3 mn in 2004, and net sales totaled EUR 103.3 mn, up from EUR 96.4 mn.",
    "Pre-tax loss totaled EUR 0.3 mn, compared to a loss of EUR 2.2 mn in the first quarter.",
    "Nokia's shares jumped 5 % -- the best day since 2009!",
    "Ämmälä Oy:n liikevaihto kasvoi; the outlook remains unchanged.",
    " ".join(["The board proposes a dividend of EUR 0.50 per share for the financial year."] * 50),
)


@dataclass(frozen=True)
class GraphCheck:
    """One exported graph against PyTorch on the check texts."""

    file: str
    bytes: int
    precision: Literal["fp32", "int8"]
    max_abs_logit_difference: float
    label_agreement: float


@dataclass(frozen=True)
class ExportResult:
    out: Path
    #: the graph ``onnx:<out>`` runs unless told otherwise
    default_file: str
    graphs: list[GraphCheck]
    check_texts: int
    seconds: float
    card: dict[str, Any]


def export_onnx(
    source: Path,
    out: Path,
    *,
    quantize: Literal["int8", "none"] = "int8",
    opset: int | None = None,
    force: bool = False,
    check_texts: Sequence[str] = CHECK_TEXTS,
) -> ExportResult:
    """Write ``out``: model.onnx (fp32), model_int8.onnx (unless ``quantize='none'``), the
    tokenizer, config.json, rung.json and README.md. Everything is checked before anything is
    written, and the folder appears at ``out`` only complete: a failure leaves nothing there
    (or, with ``force``, the model that was there)."""
    opset = DEFAULT_OPSET if opset is None else opset
    if opset not in OPSETS:
        raise ConfigurationError(
            f"opset {opset} is outside what the exporter writes ({OPSETS.start}-"
            f"{OPSETS.stop - 1}); leave it unset for {DEFAULT_OPSET}"
        )
    if quantize not in ("int8", "none"):
        raise ConfigurationError(f"quantize must be 'int8' or 'none', got {quantize!r}")
    if not check_texts:
        raise ConfigurationError("check_texts is empty; give at least one text")
    src = read_source(source)
    check_target(source, out, force)
    try:
        import numpy as np
        import onnxruntime as ort
        import torch
        import transformers
        from onnxruntime.quantization import QuantType, quantize_dynamic
        from transformers.utils import logging as hf_logging
    except ImportError as e:
        raise MissingDependencyError("rung export onnx", INSTALL) from e

    started = time.perf_counter()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    with quiet():
        loaded = load(src)
    reference_logits, reference_tokens = reference(loaded, check_texts)

    with staging(out) as tmp:
        loaded.tokenizer.save_pretrained(str(tmp))
        (tmp / "config.json").write_text(json.dumps(config_json(src), indent=2) + "\n", "utf-8")
        card: dict[str, Any] = {
            "format": 1,
            "kind": "classifier",
            "method": "onnx",
            "base": src.card.get("base"),
            "labels": list(src.labels),
            "max_seq_length": loaded.max_length,
            "max_position_embeddings": loaded.max_positions,
            "params": loaded.params,
            "inputs": loaded.inputs,
            "outputs": ["logits"],
            "tokenizer": tokenizer_card(loaded.tokenizer),
        }
        tokenizer = make_tokenizer(tmp, card, loaded.max_length)
        feeds, tokens = encode(tokenizer, check_texts, loaded.inputs)
        sample = {n: torch.from_numpy(v[:2]) for n, v in feeds.items()}

        fp32 = tmp / FP32_FILE
        with torch.no_grad(), quiet():
            torch.onnx.export(
                loaded.module,
                tuple(sample[n] for n in loaded.inputs),
                str(fp32),
                input_names=loaded.inputs,
                output_names=["logits"],
                dynamic_axes={n: {0: "batch", 1: "sequence"} for n in loaded.inputs}
                | {"logits": {0: "batch"}},
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
        graphs: dict[str, Path] = {FP32_FILE: fp32}
        if quantize == "int8":
            int8 = tmp / INT8_FILE
            with quiet():
                quantize_dynamic(
                    str(fp32),
                    str(int8),
                    weight_type=QuantType.QInt8,
                    per_channel=True,
                    reduce_range=True,
                )
            graphs[INT8_FILE] = int8

        checks: list[GraphCheck] = []
        for name, path in graphs.items():
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            logits = session.run(["logits"], feeds)[0].astype(np.float64)
            probs = softmax(logits)  # the rung's own scores: its labels are their argmax
            checks.append(
                GraphCheck(
                    file=name,
                    bytes=path.stat().st_size,
                    precision="int8" if name == INT8_FILE else "fp32",
                    max_abs_logit_difference=float(np.abs(logits - reference_logits).max()),
                    label_agreement=float((probs.argmax(1) == reference_logits.argmax(1)).mean()),
                )
            )
        default_file = INT8_FILE if quantize == "int8" else FP32_FILE
        card |= {
            "default_file": default_file,
            "files": {
                c.file: {
                    "bytes": c.bytes,
                    "precision": c.precision,
                    "quantization": QUANTIZATION if c.precision == "int8" else None,
                    "max_abs_logit_difference": c.max_abs_logit_difference,
                    "label_agreement": c.label_agreement,
                }
                for c in checks
            },
            "check": {
                "texts": len(check_texts),
                "reference": f"PyTorch fp32 ({src.method} classifier, Hugging Face tokenizer)",
                "same_token_counts": tokens == reference_tokens,
            },
            "opset": opset,
            "exporter": "torch.onnx.export (TorchScript, dynamo=False)",
            "onnxruntime_version": ort.__version__,
            "torch_version": torch.__version__,
            "transformers_version": transformers.__version__,
            "source": {
                "path": str(source.resolve()),
                "method": src.method,
                "card": src.card,
            },
            "source_test": src.card.get("test"),
            "export_seconds": round(time.perf_counter() - started, 2),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "rung_version": rung.__version__,
        }
        (tmp / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
        (tmp / "README.md").write_text(render_readme(card, out.name), encoding="utf-8")
        publish(tmp, out)
    return ExportResult(
        out=out,
        default_file=default_file,
        graphs=checks,
        check_texts=len(check_texts),
        seconds=card["export_seconds"],
        card=card,
    )
