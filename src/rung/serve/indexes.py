"""The indexes ``/v1/ask`` retrieves from: named in the serve config (``indexes:``), opened
on first use (and tried at startup), each with the embedding model it was built with.

One that cannot be opened (missing, built with another embedding model than the config names,
its model's files changed since) fails the requests that ask it with a 400 that says what to
rebuild, and is tried again on the next request: the server keeps serving everything else.
"""

from __future__ import annotations

import asyncio
import logging

from rung.errors import RungError
from rung.rag.search import Mode, Retriever
from rung.rag.stores import Hit
from rung.serve.config import ServeConfig
from rung.serve.errors import ApiError

__all__ = ["IndexPool"]

log = logging.getLogger("rung.serve")


class IndexPool:
    """The config's indexes, each opened once (on first use) and asked one query at a time:
    its store connection and its embedding model are not shared between threads."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self._open: dict[str, Retriever] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def name_for(self, asked: str | None) -> str:
        name = asked if asked is not None else self.config.default_index()
        if name is None:
            listed = ", ".join(self.config.indexes)
            raise ApiError(
                400,
                "no index named: send index (one of: " + listed + ")"
                if listed
                else "this server has no index to answer from: add an indexes: section to the "
                "serve config (the folder `rung index DOCS --out DIR` wrote)",
                param="index",
            )
        if name not in self.config.indexes:
            raise ApiError(
                404,
                f"index {name!r} is not served here; served: "
                + (", ".join(self.config.indexes) or "none"),
                code="index_not_found",
                param="index",
            )
        return name

    def _lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())

    async def _retriever(self, name: str) -> Retriever:
        retriever = self._open.get(name)
        if retriever is None:
            entry = self.config.indexes[name]
            location = self.config.index_location(name)
            retriever = await asyncio.to_thread(Retriever.open, location, entry.model)
            await retriever.embedder.aembed(["warm up"])  # load the model now, not mid-query
            self._open[name] = retriever
            log.info("index %s open (%s, %s)", name, location, retriever.meta.model_id)
        return retriever

    async def search(self, name: str, question: str, k: int, mode: Mode) -> list[Hit]:
        async with self._lock(name):
            try:
                retriever = await self._retriever(name)
            except RungError as e:
                raise ApiError(400, f"index {name!r}: {e}", code="index_unavailable") from None
            return await retriever.asearch(question, k, mode)

    async def warm(self) -> None:
        """Open every index at startup; one that fails is only logged (its requests say why)."""
        for name in self.config.indexes:
            try:
                async with self._lock(name):
                    await self._retriever(name)
            except RungError as e:
                log.warning("index %s cannot be opened yet: %s", name, e)

    def close(self) -> None:
        for retriever in self._open.values():
            retriever.close()
        self._open.clear()
