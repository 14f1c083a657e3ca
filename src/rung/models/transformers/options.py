"""The transformers backend's options (``options:`` of a ``transformers:`` rung in a spec)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["INSTALL", "TUNE_INSTALL", "TransformersOptions"]

INSTALL = "pip install 'rung[transformers]' torch==2.13.0"
TUNE_INSTALL = "pip install 'rung[tune]' torch==2.13.0"


class TransformersOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device: str = Field(
        default="auto",
        pattern=r"^(auto|cpu|mps|cuda(:\d+)?)$",
        description="auto (cuda when torch sees a GPU, else cpu), cpu, cuda, cuda:N or mps.",
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        default="auto",
        description="Weight dtype. auto: float32 on cpu, bfloat16 on a GPU that supports it "
        "(else float16). GGUF weights are dequantized to this dtype.",
    )
    max_tokens: int | None = Field(
        default=None,
        ge=1,
        description="Cap on new tokens per generate call; the request's max_tokens applies "
        "under it. Default: no cap.",
    )
    trust_remote_code: bool = Field(
        default=False,
        description="Run modelling code shipped with a hub model. Only for repositories you trust.",
    )
    threads: int | None = Field(
        default=None,
        ge=1,
        description="CPU threads PyTorch uses for this model's calls. Default: PyTorch's choice "
        "(the physical cores); 1 keeps latency steady on a machine busy with other work.",
    )
