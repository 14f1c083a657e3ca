"""The encoder backend's options (``options:`` of an ``encoder:`` rung in a spec)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["CLASSIFY_SLICE", "INSTALL", "MAX_ITER", "EncoderOptions"]

INSTALL = "pip install 'rung[encoder]'"
#: texts per encode call in classify: the per-text outputs that carry the token counts also
#: carry the token embeddings, so a very large batch is embedded in slices to bound memory
CLASSIFY_SLICE = 1024
#: lbfgs converges in a few dozen iterations on unit-length embeddings; this is a safety net
MAX_ITER = 1000


class EncoderOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    batch_size: int = Field(
        default=32, ge=1, description="Texts per forward pass, in fit and in classify."
    )
    device: str = Field(default="cpu", description="Torch device: cpu, cuda, cuda:1, mps, ...")
    head: Literal["logreg"] = Field(
        default="logreg",
        description="Classifier on the embeddings: logreg (scikit-learn LogisticRegression). "
        "A tuned folder (from `rung tune`) uses its own trained head instead.",
    )
    C: float = Field(
        default=10.0,
        gt=0,
        description="Inverse regularization strength of the head. Unit-length embeddings have "
        "small coordinates, so scikit-learn's default of 1.0 under-fits them: on the financial "
        "phrasebank, 10 beat 1 by 2-7 accuracy points with 50-300 training examples.",
    )
    seed: int = Field(default=0, description="Random state of the head.")
    normalize: bool = Field(
        default=True,
        description="Scale embeddings to unit length, before the head and in embed(). A "
        "setfit folder's head always reads what it was trained on.",
    )
    max_seq_length: int | None = Field(
        default=None,
        ge=1,
        description="Tokens per text before truncation. Default: the model's own setting "
        "(for a tuned folder, the length it was trained with).",
    )
