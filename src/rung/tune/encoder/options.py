"""How to fine-tune an encoder classifier: ``TuneOptions`` (every field documented, checked by
pydantic), and ``options_from`` for loose values with one readable error."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from rung.errors import SpecError, validation_message

__all__ = ["DEFAULT_LR", "INSTALL", "TuneOptions", "options_from"]

INSTALL = "pip install 'rung[tune]'"
#: default peak learning rates: a small encoder trained end to end takes a high one; setfit's
#: contrastive phase the setfit library's 2e-5
DEFAULT_LR = {"full": 1e-4, "setfit": 2e-5}


class TuneOptions(BaseModel):
    """How to fine-tune. With the defaults, all-MiniLM-L6-v2 reaches 0.95 accuracy on the
    financial phrasebank's held-out 20% (frozen + logistic regression: 0.91; the first-token
    head, ``pooling: cls``: 0.92-0.94) in under four minutes on two CPU cores; see
    benchmarks/bench_tune.py."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["full", "setfit"] = Field(
        default="full",
        description="full: train every weight with a classification head. setfit: contrastive "
        "pairs then a logistic-regression head, for few examples per class (8-64).",
    )
    epochs: int = Field(default=4, ge=1, description="Passes over the training split (full).")
    pooling: Literal["mean", "cls"] = Field(
        default="mean",
        description="full: what the head reads. mean: the average of the token states (a "
        "sentence-transformers folder plus head.safetensors). cls: the first token through "
        "the model's pooler (a transformers *ForSequenceClassification folder).",
    )
    head_init: Literal["probe", "random"] = Field(
        default="probe",
        description="full, mean pooling: where the head starts. probe: a logistic regression "
        "on the frozen encoder's embeddings (linear probing, then fine-tuning: the encoder's "
        "features are not pulled about by a random head). random: a fresh head.",
    )
    head_lr_multiplier: float | None = Field(
        default=None,
        gt=0,
        description="full, mean pooling: the head learns this many times faster than the "
        "encoder. Default: 1 for a probed head, 10 for a random one.",
    )
    learning_rate: float | None = Field(
        default=None,
        gt=0,
        description="Peak AdamW learning rate. Default: 1e-4 (full), 2e-5 (setfit).",
    )
    batch_size: int = Field(default=16, ge=1, description="Examples (setfit: pairs) per step.")
    max_seq_length: int = Field(
        default=128, ge=8, description="Tokens per text; longer texts are truncated."
    )
    weight_decay: float = Field(default=0.01, ge=0, description="AdamW weight decay.")
    warmup_ratio: float = Field(
        default=0.1, ge=0, lt=1, description="Share of the steps over which the rate warms up."
    )
    max_grad_norm: float = Field(default=1.0, gt=0, description="Gradient clipping norm.")
    patience: int = Field(
        default=2,
        ge=0,
        description="Stop after this many evaluations without a better validation score "
        "(0: never stop early). The best evaluation's weights are kept either way.",
    )
    eval_steps: int | None = Field(
        default=None,
        ge=1,
        description="full: evaluate every this many steps (and at the end). Default: every "
        "epoch. setfit evaluates after each contrastive epoch.",
    )
    metric: Literal["macro_f1", "accuracy"] = Field(
        default="macro_f1", description="Validation score that picks the best weights."
    )
    seed: int = Field(default=0, description="Seed of the head, dropout, batches and splits.")
    val_size: float | int = Field(
        default=0.1,
        description="Validation examples split off the training texts (stratified, at least "
        "one per class) when no validation set is given: a fraction or a count.",
    )
    device: str = Field(default="auto", description="Torch device: auto, cpu, cuda, cuda:1, mps.")
    threads: int | None = Field(
        default=None, ge=1, description="Torch CPU threads (default: torch's, one per core)."
    )
    pairs_per_example: int = Field(
        default=20,
        ge=2,
        description="setfit: pairs drawn per training example and epoch, half with the same "
        "label and half with another.",
    )
    contrastive_epochs: int = Field(
        default=1, ge=1, description="setfit: passes over freshly drawn pairs."
    )
    head_c: float = Field(
        default=10.0, gt=0, description="setfit: inverse regularization of the logistic head."
    )

    @field_validator("val_size")
    @classmethod
    def _size(cls, value: float | int) -> float | int:
        if isinstance(value, float) and not 0 < value < 1:
            raise ValueError(f"as a fraction it must be between 0 and 1, got {value}")
        if isinstance(value, int) and value < 1:
            raise ValueError(f"as a count it must be at least 1, got {value}")
        return value

    @property
    def lr(self) -> float:
        return self.learning_rate or DEFAULT_LR[self.method]

    @property
    def head_speed(self) -> float:
        if self.head_lr_multiplier is not None:
            return self.head_lr_multiplier
        return 1.0 if self.head_init == "probe" else 10.0


def options_from(values: dict[str, Any]) -> TuneOptions:
    """TuneOptions from plain values (a CLI, a spec), with a one-line error for bad ones."""
    try:
        return TuneOptions.model_validate(values)
    except ValidationError as e:
        raise SpecError(f"invalid tune options: {validation_message(e)}") from None
