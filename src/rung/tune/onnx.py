"""Export a tuned encoder classifier to ONNX, int8-quantized for the edge: its own rung
(``onnx:<folder>``).

The export traces the classifier with PyTorch's TorchScript exporter (``dynamo=False``): the
dynamo exporter of torch 2.9+ needs the ``onnxscript`` package, and for a BERT-class encoder the
traced graph is exact (logits within 1e-5 of PyTorch's). Attention is loaded in its eager form,
which traces to plain matrix products that ONNX Runtime fuses itself. Batch and sequence axes
are dynamic. A folder with a linear head (the default full fine-tune, or setfit) is exported
whole: encoder, pooling, normalization and the head in one graph, so every kind of tuned folder
gives the same kind of ONNX folder and the same rung.

Quantization is ONNX Runtime's dynamic int8 quantization: the weights of the matrix products
stored as int8 (per output channel, 7 bits: the 8th would saturate the u8×s8 kernels of CPUs
without VNNI, and per-channel scales keep 99.8% of the labels where one scale per tensor kept
98.9% on the financial phrasebank), activations quantized per batch at run time, no
calibration data. The fp32 graph stays beside the int8 one, so the rung can run either.

``rung.json`` records, per graph, how far its logits are from PyTorch's on a few texts, through
the tokenizer and softmax the rung itself uses (``rung.models.onnx``).
"""

from __future__ import annotations

import inspect
import json
import logging
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import rung
from rung.errors import (
    ConfigurationError,
    MissingDependencyError,
    ModelLoadError,
    ModelNotFoundError,
    RunError,
)
from rung.models.base import softmax
from rung.models.encoder import HEAD_FILE, read_json_object, read_tuned
from rung.models.onnx import CARD_FILE, FP32_FILE, INT8_FILE, encode, make_tokenizer
from rung.tune.card import check_out, publish, staging

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
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
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


@dataclass(frozen=True)
class _Source:
    path: Path
    method: Literal["full", "setfit"]
    head: Literal["sequence", "linear"]
    labels: tuple[str, ...]
    card: dict[str, Any]
    config: dict[str, Any]
    max_seq_length: int | None


# -- what may be exported, and where ----------------------------------------------------------


def _read_source(source: Path) -> _Source:
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
    return _Source(
        path=source,
        method=tuned.method,
        head=tuned.head,
        labels=tuned.labels,
        card=tuned.card,
        config=config,
        max_seq_length=tuned.max_seq_length,
    )


def _check_target(source: Path, out: Path, force: bool) -> None:
    if out.resolve() == source.resolve():
        raise RunError(f"--out {out} is the source folder; give the ONNX rung a folder of its own")
    check_out(out, force)


# -- tracing ----------------------------------------------------------------------------------


@contextmanager
def _quiet() -> Iterator[None]:
    """The tracer warns about Python branches of transformers' mask code (they do not depend on
    the data for an encoder: they compare shapes), torch that this exporter is the legacy one,
    and the quantizer logs advice through the root logger; the export reports its own check
    figures instead."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


@dataclass
class _Loaded:
    module: Any  # a torch.nn.Module from input tensors (in ``inputs`` order) to logits
    tokenizer: Any  # the Hugging Face fast tokenizer the PyTorch rung uses
    inputs: list[str]
    max_positions: int | None
    max_length: int
    params: int


def _load(src: _Source) -> _Loaded:
    import torch
    from transformers import AutoTokenizer

    try:
        if src.head == "sequence":
            from transformers import AutoModelForSequenceClassification

            tokenizer = AutoTokenizer.from_pretrained(str(src.path), local_files_only=True)
            model = AutoModelForSequenceClassification.from_pretrained(
                str(src.path), local_files_only=True, attn_implementation="eager"
            )
            encoder = model
            accepted = set(inspect.signature(model.forward).parameters)
            st_length = None
        else:
            from safetensors.numpy import load_file
            from sentence_transformers import SentenceTransformer

            st = SentenceTransformer(
                str(src.path),
                device="cpu",
                local_files_only=True,
                model_kwargs={"attn_implementation": "eager"},
            )
            tokenizer = st.tokenizer
            encoder = st[0].auto_model
            accepted = set(_INPUTS)  # sentence-transformers passes on what the tokenizer gives
            st_length = st.max_seq_length
            head = load_file(str(src.path / HEAD_FILE))
    except Exception as e:  # the boundary: any failure to build the model is a load error
        raise ModelLoadError(
            f"cannot load the classifier in {src.path}: {type(e).__name__}: {e}; check that the "
            "folder is complete (config.json, weights, tokenizer files) or tune it again"
        ) from e
    if not getattr(tokenizer, "is_fast", False):
        raise ModelLoadError(
            f"{src.path} has only a slow (Python) tokenizer; the onnx rung reads tokenizer.json, "
            "which transformers writes for fast tokenizers: tune from a base model that has one"
        )
    inputs = [n for n in _INPUTS if n in tokenizer.model_input_names and n in accepted]
    if "input_ids" not in inputs or "attention_mask" not in inputs:
        raise ModelLoadError(
            f"{src.path}: the tokenizer gives {', '.join(tokenizer.model_input_names)}, not the "
            "input_ids and attention_mask of an encoder classifier; export takes encoders only"
        )
    limit = getattr(encoder.config, "max_position_embeddings", None)
    max_positions = limit if isinstance(limit, int) else None
    max_length = src.max_seq_length or st_length or max_positions or 512
    if max_positions is not None:
        max_length = min(max_length, max_positions)

    class Logits(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *tensors: Any) -> Any:
            return self.inner(**dict(zip(inputs, tensors, strict=True))).logits

    class SetFitLogits(torch.nn.Module):
        """A linear-head rung in one graph: sentence embedding, unit length when the head was
        trained on it, then the linear head."""

        def __init__(self, inner: Any, coef: Any, intercept: Any, normalize: bool) -> None:
            super().__init__()
            self.inner = inner
            self.normalize = normalize
            self.register_buffer("coef", torch.from_numpy(coef).float())
            self.register_buffer("intercept", torch.from_numpy(intercept).float())

        def forward(self, *tensors: Any) -> Any:
            embedding = self.inner(dict(zip(inputs, tensors, strict=True)))["sentence_embedding"]
            if self.normalize:
                embedding = torch.nn.functional.normalize(embedding, p=2, dim=1)
            return embedding @ self.coef.T + self.intercept

    module: torch.nn.Module
    if src.head == "sequence":
        module = Logits(model)
    else:
        module = SetFitLogits(
            st, head["coef"], head["intercept"], bool(src.card.get("normalize", True))
        )
    # A fresh wrapper is in training mode, and the exporter restores that mode on the way out:
    # without eval() the model would run with dropout after the export.
    module.eval()
    params = sum(p.numel() for p in module.parameters())
    return _Loaded(module, tokenizer, inputs, max_positions, int(max_length), params)


def _reference(loaded: _Loaded, texts: Sequence[str]) -> tuple[Any, list[int]]:
    """PyTorch's logits and token counts, tokenized as the PyTorch rung tokenizes."""
    import torch

    batch = loaded.tokenizer(
        list(texts),
        padding=True,
        truncation=True,
        max_length=loaded.max_length,
        return_tensors="pt",
    )
    with torch.no_grad():
        logits = loaded.module(*[batch[n] for n in loaded.inputs])
    tokens = [int(n) for n in batch["attention_mask"].sum(dim=1).tolist()]
    return logits.double().numpy(), tokens


# -- the folder --------------------------------------------------------------------------------


def _tokenizer_card(tokenizer: Any) -> dict[str, Any]:
    pad_id = tokenizer.pad_token_id
    return {
        "pad_token": tokenizer.pad_token,
        "pad_id": int(pad_id) if pad_id is not None else 0,
        "pad_type_id": int(getattr(tokenizer, "pad_token_type_id", 0) or 0),
        "padding_side": tokenizer.padding_side,
    }


def _config(src: _Source) -> dict[str, Any]:
    """The source's config.json with the labels of the card: what `from_pretrained` and the
    Hugging Face hub read for a classifier's labels."""
    config = dict(src.config)
    config["id2label"] = {str(i): label for i, label in enumerate(src.labels)}
    config["label2id"] = {label: i for i, label in enumerate(src.labels)}
    return config


def _fmt_mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def _readme(card: dict[str, Any], name: str) -> str:
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
    src = _read_source(source)
    _check_target(source, out, force)
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
    with _quiet():
        loaded = _load(src)
    reference, reference_tokens = _reference(loaded, check_texts)

    with staging(out) as tmp:
        loaded.tokenizer.save_pretrained(str(tmp))
        (tmp / "config.json").write_text(json.dumps(_config(src), indent=2) + "\n", "utf-8")
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
            "tokenizer": _tokenizer_card(loaded.tokenizer),
        }
        tokenizer = make_tokenizer(tmp, card, loaded.max_length)
        feeds, tokens = encode(tokenizer, check_texts, loaded.inputs)
        sample = {n: torch.from_numpy(v[:2]) for n, v in feeds.items()}

        fp32 = tmp / FP32_FILE
        with torch.no_grad(), _quiet():
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
            with _quiet():
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
                    max_abs_logit_difference=float(np.abs(logits - reference).max()),
                    label_agreement=float((probs.argmax(1) == reference.argmax(1)).mean()),
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
        (tmp / "README.md").write_text(_readme(card, out.name), encoding="utf-8")
        publish(tmp, out)
    return ExportResult(
        out=out,
        default_file=default_file,
        graphs=checks,
        check_texts=len(check_texts),
        seconds=card["export_seconds"],
        card=card,
    )
