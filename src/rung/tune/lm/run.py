"""``tune_lora``: one run, in order: check the examples, ``out``, the base and the GGUF type
(before the base loads), encode, train, save the adapter (and merged weights), write the GGUF,
the cards, and rename the folder into place."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rung.errors import ConfigurationError, MissingDependencyError, ModelLoadError
from rung.export.folder import check_out, publish, staging
from rung.export.gguf import GGUF_TYPES, GgufExport, GgufType, check_exportable, write_merged_gguf
from rung.models.transformers import TUNE_INSTALL
from rung.tune.lm.base import base_backend, base_id_of
from rung.tune.lm.card import build_card, write_cards
from rung.tune.lm.data import PromptLike, TrainExample, as_examples, system_of
from rung.tune.lm.encoding import encode
from rung.tune.lm.folder import readable, save_adapter
from rung.tune.lm.options import LoraOptions
from rung.tune.lm.progress import LoraProgress, NullLoraProgress
from rung.tune.lm.train import fit_lora

__all__ = ["LoraResult", "tune_lora"]


@dataclass
class LoraResult:
    """What a run did. Losses are mean cross-entropy per completion token (nats)."""

    out: Path
    card: dict[str, Any]
    steps: int
    epochs: float
    #: measured (no dropout) on up to LOSS_SAMPLE training examples, before and after training
    train_loss_before: float
    train_loss_after: float
    #: on the validation examples; None without them. ``validation_loss`` is the kept adapter's.
    validation_loss_before: float | None
    validation_loss: float | None
    stopped_early: bool
    train_seconds: float
    gguf: Path | None = None
    history: list[dict[str, Any]] = field(default_factory=list)


def tune_lora(
    base: str,
    examples: Sequence[TrainExample | tuple[PromptLike, str]],
    out: Path,
    options: LoraOptions | None = None,
    *,
    val: Sequence[TrainExample | tuple[PromptLike, str]] | None = None,
    data_info: dict[str, Any] | None = None,
    gguf: GgufType | None = None,
    progress: LoraProgress | None = None,
    force: bool = False,
) -> LoraResult:
    """Train LoRA adapters on ``base`` (``transformers:<alias | hub id | folder | .gguf>``, or
    the same without the prefix) and write the model folder ``out``. ``val`` enables early
    stopping on the validation loss; ``gguf`` ("f16", "f32", "q8_0") also writes the merged
    weights as a GGUF file for llama.cpp. Everything the user can get wrong is checked before
    the base is loaded."""
    options = options or LoraOptions()
    train_set = as_examples(examples, "training")
    val_set = as_examples(val or [], "validation")
    out = Path(out)
    check_out(out, force)
    backend = base_backend(base, options)
    source = backend.source()
    base_id = base_id_of(backend)
    base_gguf: Path | None = None
    if gguf is not None:
        if gguf not in GGUF_TYPES:
            raise ConfigurationError(
                f"unknown GGUF type {gguf!r}; use one of {', '.join(GGUF_TYPES)}"
            )
        base_gguf = check_exportable(source, base_id)
    try:
        import peft  # noqa: F401
    except ImportError as e:
        raise MissingDependencyError("rung tune-lm", TUNE_INSTALL) from e
    progress = progress or NullLoraProgress()

    with staging(out) as tmp, contextlib.closing(backend):
        progress.phase(f"loading {base_id}")
        backend.load()
        model, tok = backend.pretrained()
        device = str(backend.info().extra.get("device", "cpu"))
        pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        if pad_id is None:
            raise ModelLoadError(
                f"the tokenizer of {base_id} has no padding or end-of-sequence token; "
                "choose a chat or instruct base"
            )
        train_enc = [encode(tok, e, options.max_length, base_id) for e in train_set]
        val_enc = [encode(tok, e, options.max_length, base_id) for e in val_set]
        truncated = sum(e.truncated for e in train_enc + val_enc)
        fitted = fit_lora(model, train_enc, val_enc, options, pad_id, device, progress, base_id)
        peft_model, trained = fitted.model, fitted.trained
        before, after, val_before = fitted.loss_before, fitted.loss_after, fitted.val_loss_before
        train_seconds = fitted.seconds

        save_adapter(
            tmp,
            peft_model,
            tok,
            source=source,
            base_id=base_id,
            merge=options.merge,
            progress=progress,
        )
        backend.close()  # the GGUF export below needs the memory more
        del model, peft_model
        exported: GgufExport | None = None
        if gguf is not None and base_gguf is not None:
            progress.phase(f"writing the {gguf} GGUF")
            exported = write_merged_gguf(tmp, base_gguf, tmp / f"model-{gguf}.gguf", outtype=gguf)

        card = build_card(
            base_id=base_id,
            source=source,
            options=options,
            data_info=data_info,
            n_train=len(train_set),
            n_val=len(val_set),
            truncated=truncated,
            chat_template=bool(getattr(tok, "chat_template", None)),
            system=system_of(train_set),
            trained=trained,
            before=before,
            after=after,
            val_before=val_before,
            train_seconds=train_seconds,
            gguf=exported,
        )
        write_cards(tmp, card, out.name)
        readable(tmp)
        publish(tmp, out)
    return LoraResult(
        out=out.resolve(),
        card=card,
        steps=trained.steps,
        epochs=trained.epochs,
        train_loss_before=before,
        train_loss_after=after,
        validation_loss_before=val_before,
        validation_loss=trained.validation_loss,
        stopped_early=trained.stopped_early,
        train_seconds=train_seconds,
        gguf=out.resolve() / exported.path.name if exported is not None else None,
        history=trained.history,
    )
