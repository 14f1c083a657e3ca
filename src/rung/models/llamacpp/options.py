"""The llamacpp backend's options (``options:`` of a ``llamacpp:`` rung in a spec)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["INSTALL", "ExtraBuffers", "LlamaCppOptions"]

INSTALL = "pip install 'rung[llamacpp]'"

ExtraBuffers = Literal["auto", "on", "off"]


class LlamaCppOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n_ctx: int = Field(
        default=2048,
        ge=0,
        description="Context window in tokens (prompt plus answer), rounded up to a multiple of "
        "256 as llama.cpp does; 0 takes the model's own.",
    )
    n_threads: int | None = Field(
        default=None,
        ge=1,
        description="CPU threads for generation and prompt evaluation. Default: every core "
        "this process may use; on a machine busy with other work, fewer threads avoid stalls "
        "(llama.cpp's threads wait for each other at every layer).",
    )
    n_batch: int = Field(
        default=512, ge=1, description="Prompt tokens evaluated per llama.cpp batch."
    )
    n_gpu_layers: int = Field(
        default=0,
        ge=-1,
        description="Layers offloaded to the GPU (-1: all); needs a GPU build of llama-cpp-python.",
    )
    seed: int = Field(
        default=0, ge=0, description="Sampling seed (matters only when temperature > 0)."
    )
    max_tokens: int | None = Field(
        default=None,
        ge=1,
        description="Cap on the tokens generate() produces; a request asking for fewer gets fewer.",
    )
    repeat_penalty: float = Field(
        default=1.0,
        gt=0,
        description="llama.cpp's repetition penalty for generate() (1.0: none, plain decoding "
        "comparable with other backends).",
    )
    extra_buffers: ExtraBuffers = Field(
        default="auto",
        description="llama.cpp's extra buffer types, which repack the weights for faster "
        "kernels at load time (AMX on Intel Xeons, AVX2/AVX-512 layouts for some "
        "quantizations). 'auto' turns them off when the CPU reports AMX, whose repacking "
        "crashes llama.cpp, and keeps them on elsewhere; 'on' and 'off' force it.",
    )
