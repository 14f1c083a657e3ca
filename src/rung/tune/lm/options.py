"""How to train LoRA adapters: ``LoraOptions`` (every field documented, checked by pydantic),
and ``options_from`` for loose values with one readable error."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from rung.errors import ConfigurationError, validation_message

__all__ = ["DEFAULT_BASE", "DEFAULT_TARGETS", "LoraOptions", "options_from"]

DEFAULT_BASE = "transformers:smollm2-135m-instruct"
#: the attention projections of llama-like models (Llama, SmolLM, Mistral, Qwen, Gemma)
DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")


class LoraOptions(BaseModel):
    """Hyperparameters of a LoRA run. Defaults suit a ~100M-2B model and a few hundred examples."""

    model_config = ConfigDict(extra="forbid")

    rank: int = Field(default=8, ge=1, le=1024, description="LoRA rank r of each adapter.")
    alpha: int = Field(
        default=16, ge=1, description="LoRA alpha: the adapters' output is scaled by alpha/r."
    )
    dropout: float = Field(default=0.05, ge=0.0, lt=1.0, description="Dropout on the adapters.")
    target_modules: list[str] | Literal["all-linear"] = Field(
        default_factory=lambda: list(DEFAULT_TARGETS),
        description="Module names that get adapters (q_proj, k_proj, v_proj, o_proj by default), "
        "or 'all-linear' for every linear layer but the output head.",
    )
    epochs: int = Field(default=1, ge=1, description="Passes over the training examples.")
    max_steps: int | None = Field(
        default=None, ge=1, description="Optimizer steps to take; overrides epochs when set."
    )
    lr: float = Field(default=2e-4, gt=0, le=1.0, description="Peak learning rate (AdamW).")
    weight_decay: float = Field(default=0.0, ge=0.0, description="AdamW weight decay.")
    warmup_steps: int = Field(
        default=0, ge=0, description="Steps of linear warmup; then linear decay to zero."
    )
    batch_size: int = Field(default=4, ge=1, description="Examples per optimizer step.")
    max_length: int = Field(
        default=512, ge=16, description="Tokens per example (prompt + completion) at most."
    )
    seed: int = Field(default=0, description="Seed of the adapters' init, dropout and order.")
    eval_every: int | None = Field(
        default=None,
        ge=1,
        description="Score the validation examples every N steps (default: after each epoch).",
    )
    patience: int = Field(
        default=2,
        ge=1,
        description="Stop after this many validation scores without a lower loss; the "
        "adapter of the lowest validation loss is kept.",
    )
    merge: bool = Field(
        default=False, description="Also write merged/: the full merged weights (safetensors)."
    )
    device: str = Field(
        default="auto",
        pattern=r"^(auto|cpu|mps|cuda(:\d+)?)$",
        description="auto (cuda when torch sees a GPU, else cpu), cpu, cuda, cuda:N or mps.",
    )
    threads: int | None = Field(
        default=None, ge=1, description="CPU threads for training (default: PyTorch's choice)."
    )

    @field_validator("target_modules")
    @classmethod
    def _targets(cls, value: list[str] | str) -> list[str] | str:
        if isinstance(value, list) and not [v for v in value if v.strip()]:
            raise ValueError("name at least one module, or 'all-linear'")
        return value


def options_from(values: dict[str, Any]) -> LoraOptions:
    """LoraOptions from loose values (the CLI's), with one readable error."""
    try:
        return LoraOptions.model_validate(values)
    except ValidationError as e:
        raise ConfigurationError(f"invalid tune-lm options: {validation_message(e)}") from None
