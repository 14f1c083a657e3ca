"""The tuned classifier as one PyTorch module from input tensors to logits (what the exporter
traces), and PyTorch's own logits on the check texts (what each graph is measured against)."""

from __future__ import annotations

import inspect
import logging
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from rung.errors import ModelLoadError
from rung.export.onnx.source import Source
from rung.models.encoder import HEAD_FILE

__all__ = ["INPUTS", "Loaded", "load", "quiet", "reference"]

#: the encoder inputs a graph may take, in this order
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


@contextmanager
def quiet() -> Iterator[None]:
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
class Loaded:
    module: Any  # a torch.nn.Module from input tensors (in ``inputs`` order) to logits
    tokenizer: Any  # the Hugging Face fast tokenizer the PyTorch rung uses
    inputs: list[str]
    max_positions: int | None
    max_length: int
    params: int


def load(src: Source) -> Loaded:
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
            accepted = set(INPUTS)  # sentence-transformers passes on what the tokenizer gives
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
    inputs = [n for n in INPUTS if n in tokenizer.model_input_names and n in accepted]
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
    return Loaded(module, tokenizer, inputs, max_positions, int(max_length), params)


def reference(loaded: Loaded, texts: Sequence[str]) -> tuple[Any, list[int]]:
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
