"""A Weaviate store (weaviate-client v4) behind the same contract: the vectors are rung's
(``self_provided``, HNSW with cosine distance), keyword search is Weaviate's BM25, and hybrid
search is Weaviate's own, with ranked fusion (reciprocal ranks, as ``rrf`` does elsewhere).

URL: ``weaviate://host:8080`` (or ``http://host:8080``; ``weaviate+https://host`` or
``https://host`` for TLS) with optional parameters ``collection=Name`` (default ``Rung``),
``grpc_port=N`` (default 50051, 443 over TLS) and ``api_key_env=VAR`` (default
``WEAVIATE_API_KEY``, used when set). The index's meta is the collection's description.

Tested only against a live server: the contract tests run it when ``WEAVIATE_URL`` is set (no
Weaviate binary can be installed on rung's own test machines).

Weaviate has no transactions: a build that is interrupted may leave some new chunks beside the
old ones, and the meta (which model made the vectors) is written last. Running ``rung index``
again finishes the job, since it compares content hashes with what the collection holds.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

from rung.errors import ConfigurationError, MissingDependencyError, RunError
from rung.rag.chunking import Chunk
from rung.rag.stores.base import (
    Hit,
    IndexMeta,
    SearchFilter,
    StoredChunk,
    StoreStats,
    batched,
)

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["INSTALL", "WeaviateStore"]

INSTALL = "pip install 'rung[weaviate]'"
_PROPERTIES = ["chunk_id", "source", "record", "ordinal", "text", "start_char", "end_char",
               "headings", "hash"]  # fmt: skip
_BATCH = 500


class WeaviateStore:
    schemes: ClassVar[tuple[str, ...]] = ("weaviate", "weaviate+http", "weaviate+https", "http",
                                          "https")  # fmt: skip

    def __init__(self, url: str) -> None:
        self.url = url
        parts = urlsplit(url)
        if not parts.hostname:
            raise ConfigurationError(f"{url!r} names no host; write weaviate://host:8080")
        self.secure = parts.scheme in ("https", "weaviate+https")
        params = dict(parse_qsl(parts.query))
        name = params.pop("collection", "Rung")
        if not name.replace("_", "").isalnum() or not name[0].isalpha():
            raise ConfigurationError(
                f"collection={name!r}: a Weaviate collection name is letters, digits and _, "
                "starting with a letter"
            )
        self.collection_name = name[0].upper() + name[1:]
        self.host = parts.hostname
        self.port = parts.port or (443 if self.secure else 8080)
        try:
            self.grpc_port = int(params.pop("grpc_port", "443" if self.secure else "50051"))
        except ValueError:
            raise ConfigurationError(f"grpc_port in {url!r} must be an integer") from None
        self.api_key_env = params.pop("api_key_env", "WEAVIATE_API_KEY")
        if params:
            raise ConfigurationError(
                f"unknown parameter(s) {', '.join(sorted(params))} in the Weaviate URL; known: "
                "collection, grpc_port, api_key_env"
            )
        self._client: Any = None

    @classmethod
    def from_url(cls, url: str) -> WeaviateStore:
        return cls(url)

    # -- connection ---------------------------------------------------------------------------

    def _connect(self) -> Any:
        if self._client is not None:
            return self._client
        try:
            import weaviate
            from weaviate.classes.init import Auth
            from weaviate.exceptions import WeaviateBaseError
        except ImportError as e:
            raise MissingDependencyError("the Weaviate vector store", INSTALL) from e
        key = os.environ.get(self.api_key_env)
        try:
            self._client = weaviate.connect_to_custom(
                http_host=self.host,
                http_port=self.port,
                http_secure=self.secure,
                grpc_host=self.host,
                grpc_port=self.grpc_port,
                grpc_secure=self.secure,
                auth_credentials=Auth.api_key(key) if key else None,
            )
        except WeaviateBaseError as e:
            raise ConfigurationError(
                f"cannot connect to Weaviate at {self.host}:{self.port} (gRPC {self.grpc_port}): "
                f"{e}; check the URL and that the server is running"
            ) from None
        return self._client

    def _collection(self) -> Any | None:
        client = self._connect()
        if not client.collections.exists(self.collection_name):
            return None
        return client.collections.get(self.collection_name)

    def read_meta(self) -> IndexMeta | None:
        collection = self._collection()
        if collection is None:
            return None
        description = collection.config.get().description
        if not description:
            return None
        try:
            return IndexMeta.from_json(json.loads(description))
        except (ValueError, TypeError):
            return None  # a collection someone else made: no rung meta

    @contextlib.contextmanager
    def writing(self, meta: IndexMeta) -> Iterator[None]:
        from weaviate.classes.config import (
            Configure,
            DataType,
            Property,
            Tokenization,
            VectorDistances,
        )

        client = self._connect()
        if not client.collections.exists(self.collection_name):
            field = Tokenization.FIELD  # exact-match properties: filters, not search
            client.collections.create(
                self.collection_name,
                description="",
                vector_config=Configure.Vectors.self_provided(
                    vector_index_config=Configure.VectorIndex.hnsw(
                        distance_metric=VectorDistances.COSINE
                    )
                ),
                properties=[
                    Property(name="chunk_id", data_type=DataType.TEXT, tokenization=field),
                    Property(name="source", data_type=DataType.TEXT, tokenization=field),
                    Property(name="record", data_type=DataType.TEXT, tokenization=field),
                    Property(name="ordinal", data_type=DataType.INT),
                    Property(name="text", data_type=DataType.TEXT),
                    Property(name="start_char", data_type=DataType.INT),
                    Property(name="end_char", data_type=DataType.INT),
                    Property(name="headings", data_type=DataType.TEXT_ARRAY),
                    Property(name="hash", data_type=DataType.TEXT, tokenization=field),
                ],
            )
        yield
        collection = client.collections.get(self.collection_name)
        collection.config.update(description=json.dumps(meta.to_json()))

    # -- writes -------------------------------------------------------------------------------

    def upsert(self, chunks: Sequence[Chunk], vectors: NDArray[np.float32]) -> None:
        from weaviate.classes.data import DataObject
        from weaviate.util import generate_uuid5

        collection = self._collection()
        assert collection is not None, "upsert() is called inside writing()"
        for start in range(0, len(chunks), _BATCH):
            batch = chunks[start : start + _BATCH]
            objects = [
                DataObject(
                    properties={
                        "chunk_id": c.id,
                        "source": c.source,
                        "record": c.record or "",
                        "ordinal": c.ordinal,
                        "text": c.text,
                        "start_char": c.start,
                        "end_char": c.end,
                        "headings": list(c.headings),
                        "hash": c.hash,
                    },
                    uuid=generate_uuid5(c.id),
                    vector=[float(x) for x in v],
                )
                for c, v in zip(batch, vectors[start : start + _BATCH], strict=True)
            ]
            result = collection.data.insert_many(objects)
            if result.has_errors:
                first = next(iter(result.errors.values()))
                raise RunError(
                    f"Weaviate refused {len(result.errors)} of {len(objects)} chunks "
                    f"({getattr(first, 'message', first)}); check the server's logs"
                )

    def _delete_where(self, prop: str, values: Sequence[str]) -> int:
        from weaviate.classes.query import Filter

        collection = self._collection()
        if collection is None or not values:
            return 0
        removed = 0
        for batch in batched(list(values), _BATCH):
            result = collection.data.delete_many(
                where=Filter.by_property(prop).contains_any(list(batch))
            )
            removed += int(result.successful)
        return removed

    def delete(self, ids: Sequence[str]) -> int:
        return self._delete_where("chunk_id", ids)

    def delete_sources(self, sources: Sequence[str]) -> int:
        return self._delete_where("source", sources)

    # -- reads --------------------------------------------------------------------------------

    def hashes(self) -> dict[str, StoredChunk]:
        collection = self._collection()
        if collection is None:
            return {}
        found: dict[str, StoredChunk] = {}
        wanted = ["chunk_id", "source", "hash", "start_char", "end_char"]
        for obj in collection.iterator(return_properties=wanted):
            p = obj.properties
            found[str(p["chunk_id"])] = StoredChunk(
                str(p["source"]), str(p["hash"]), int(p["start_char"]), int(p["end_char"])
            )
        return found

    def vectors(self, ids: Sequence[str]) -> dict[str, NDArray[np.float32]]:
        import numpy as np
        from weaviate.classes.query import Filter

        collection = self._collection()
        found: dict[str, NDArray[np.float32]] = {}
        if collection is None:
            return found
        for batch in batched(list(ids), _BATCH):
            response = collection.query.fetch_objects(
                filters=Filter.by_property("chunk_id").contains_any(list(batch)),
                limit=len(batch),
                include_vector=True,
                return_properties=["chunk_id"],
            )
            for obj in response.objects:
                vector = obj.vector.get("default") if isinstance(obj.vector, dict) else obj.vector
                found[str(obj.properties["chunk_id"])] = np.asarray(vector, dtype=np.float32)
        return found

    @staticmethod
    def _chunk(props: dict[str, Any]) -> Chunk:
        return Chunk(
            id=str(props["chunk_id"]),
            source=str(props["source"]),
            record=str(props["record"]) or None,
            ordinal=int(props["ordinal"]),
            text=str(props["text"]),
            start=int(props["start_char"]),
            end=int(props["end_char"]),
            headings=tuple(props.get("headings") or ()),
            hash=str(props["hash"]),
        )

    @staticmethod
    def _filters(filter: SearchFilter | None) -> Any:
        if filter is None or filter.sources is None:
            return None
        from weaviate.classes.query import Filter

        return Filter.by_property("source").contains_any(list(filter.sources))

    def knn(
        self, vector: NDArray[np.float32], k: int, filter: SearchFilter | None = None
    ) -> list[Hit]:
        from weaviate.classes.query import MetadataQuery

        collection = self._collection()
        if collection is None or k <= 0:
            return []
        response = collection.query.near_vector(
            near_vector=[float(x) for x in vector],
            limit=k,
            filters=self._filters(filter),
            return_properties=_PROPERTIES,
            return_metadata=MetadataQuery(distance=True),
        )
        return [
            Hit(self._chunk(o.properties), 1.0 - float(o.metadata.distance))
            for o in response.objects
        ]

    def keyword(self, query: str, k: int, filter: SearchFilter | None = None) -> list[Hit]:
        from weaviate.classes.query import MetadataQuery

        collection = self._collection()
        if collection is None or k <= 0 or not query.strip():
            return []
        response = collection.query.bm25(
            query=query,
            query_properties=["text", "headings"],
            limit=k,
            filters=self._filters(filter),
            return_properties=_PROPERTIES,
            return_metadata=MetadataQuery(score=True),
        )
        return [Hit(self._chunk(o.properties), float(o.metadata.score)) for o in response.objects]

    def hybrid(
        self,
        query: str,
        vector: NDArray[np.float32],
        k: int,
        filter: SearchFilter | None = None,
    ) -> list[Hit]:
        from weaviate.classes.query import HybridFusion, MetadataQuery

        collection = self._collection()
        if collection is None or k <= 0:
            return []
        response = collection.query.hybrid(
            query=query,
            vector=[float(x) for x in vector],
            alpha=0.5,
            fusion_type=HybridFusion.RANKED,
            query_properties=["text", "headings"],
            limit=k,
            filters=self._filters(filter),
            return_properties=_PROPERTIES,
            return_metadata=MetadataQuery(score=True),
        )
        return [Hit(self._chunk(o.properties), float(o.metadata.score)) for o in response.objects]

    def stats(self) -> StoreStats:
        from weaviate.classes.aggregate import GroupByAggregate

        meta = self.read_meta()
        collection = self._collection()
        if collection is None:
            return StoreStats(self.url, 0, 0, None)
        total = collection.aggregate.over_all(total_count=True).total_count or 0
        groups = collection.aggregate.over_all(group_by=GroupByAggregate(prop="source")).groups
        return StoreStats(
            self.url,
            int(total),
            len(groups),
            meta.dimension if meta else None,
            extra={"collection": self.collection_name},
        )

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
