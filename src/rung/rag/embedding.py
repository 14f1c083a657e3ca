"""Embedding through the backend contract only: any rung whose backend ``can_embed`` (the
bundled ``encoder:minilm-l6``, an ``openai:`` embeddings model, a folder from ``rung tune``).

Vectors are scaled to unit length here, whatever the backend does, so that cosine similarity
and the dot product agree in every store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rung.errors import ModelNotFoundError
from rung.models import registry
from rung.models.base import Model

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["DEFAULT_MODEL", "EmbedStats", "Embedder"]

DEFAULT_MODEL = "encoder:minilm-l6"
#: texts per embed() call: big enough to batch well, small enough for a smooth progress bar
BATCH = 64


@dataclass
class EmbedStats:
    texts: int = 0
    tokens: int = 0
    #: texts that filled the model's context: their tail was cut off before embedding
    truncated: int = 0


class Embedder:
    """One embedding rung, loaded on first use."""

    def __init__(self, model_id: str = DEFAULT_MODEL, options: dict[str, Any] | None = None):
        self.model_id = model_id
        self.options: dict[str, Any] = dict(options or {})
        self.model: Model = registry.create(model_id, options)
        if not self.model.can_embed:
            raise ModelNotFoundError(
                f"{model_id} does not make embeddings; index with encoder:minilm-l6 (bundled), "
                "an openai: embeddings model or an encoder folder from `rung tune`"
            )
        self._loaded = False
        self._context: int | None = None
        self.stats = EmbedStats()

    def fingerprint(self) -> str:
        return self.model.fingerprint()

    def load(self) -> None:
        if self._loaded:
            return
        self.model.check()
        self.model.load()
        self._context = self.model.info().context_length
        self._loaded = True

    def embed(
        self,
        texts: Sequence[str],
        on_batch: Callable[[int], None] | None = None,
        batch_size: int = BATCH,
    ) -> NDArray[np.float32]:
        """Unit-length vectors of ``texts``, one row each; ``on_batch(n)`` after every batch.
        Sync: for the CLI and scripts (``aembed`` inside an event loop)."""
        return asyncio.run(self.aembed(texts, on_batch, batch_size))

    async def aembed(
        self,
        texts: Sequence[str],
        on_batch: Callable[[int], None] | None = None,
        batch_size: int = BATCH,
    ) -> NDArray[np.float32]:
        """``embed`` from a running event loop (a server's). Load the model first."""
        import numpy as np

        if not self._loaded:
            await asyncio.to_thread(self.load)
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        parts = []
        for start in range(0, len(texts), batch_size):
            batch = texts[start : start + batch_size]
            embeddings = await self.model.embed(batch)
            parts.append(np.asarray(embeddings.vectors, dtype=np.float32))
            self.stats.texts += len(batch)
            self.stats.tokens += sum(embeddings.tokens)
            if self._context:
                self.stats.truncated += sum(n >= self._context for n in embeddings.tokens)
            if on_batch is not None:
                on_batch(len(batch))
        vectors = np.concatenate(parts, axis=0)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return (vectors / np.where(norms > 0, norms, 1.0)).astype(np.float32)

    def close(self) -> None:
        self.model.close()
