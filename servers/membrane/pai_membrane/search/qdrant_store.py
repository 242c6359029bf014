"""Vector search in Qdrant (a server by URL + API key, or qdrant-client's local mode).

The vectors' source of truth stays ``s_vectors`` in the memory's SQLite file (written, made
pending and dropped exactly as by :class:`NumpyVectorStore`, whose reads this class inherits);
Qdrant is the derived search index. It follows the table through ``s_vector_log`` the same way
the NumPy matrix does: a few changes are upserted or deleted point by point, many (or a log
pruned past what this process has seen) rebuild the collection, so a collection lost or
created empty is rebuilt from SQLite on the next search. Points carry ``kind`` and ``at`` as
payload (keyword and float payload indexes on a server; local mode ignores indexes), and kind
and time filters go into the query itself, so top-k is taken among matching points only.

The collection is created with the stored model's size and cosine distance; upserts are
batched. ``qdrant-client`` is imported on first use (``pip install 'pai-membrane[qdrant]'``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pai_core.errors import BackendUnavailable, MissingDependency
from pai_membrane.search.optional import import_extra
from pai_membrane.search.vector_store import NumpyVectorStore

if TYPE_CHECKING:
    from pai_core.settings import MemorySettings

__all__ = ["QdrantVectorStore"]

_BATCH = 512


class QdrantVectorStore(NumpyVectorStore):
    """:class:`~pai_membrane.search.vector_store.VectorStore` searching a Qdrant collection."""

    def __init__(
        self,
        *,
        url: str | None = None,
        api_key: str | None = None,
        location: str = ":memory:",
        collection: str = "pai_memory",
        dim: int = 384,
        client: Any = None,
    ) -> None:
        super().__init__(dim)
        self.url = url
        self.location = location
        self.collection = collection
        self._api_key = api_key
        self._client = client
        self._models: Any = None

    @classmethod
    def from_settings(cls, settings: MemorySettings) -> QdrantVectorStore:
        key = settings.qdrant_api_key
        return cls(
            url=settings.qdrant_url,
            api_key=key.get_secret_value() if key is not None else None,
            collection=settings.qdrant_collection,
        )

    # ---------------------------------------------------------------- connection

    @property
    def client(self) -> Any:
        if self._client is None:
            qdrant = import_extra(
                "qdrant_client", needed_by="the qdrant vector store", extra="qdrant"
            )
            QdrantClient = qdrant.QdrantClient
            if self.url:
                self._client = QdrantClient(url=self.url, api_key=self._api_key, timeout=30)
            else:
                self._client = QdrantClient(location=self.location)
        return self._client

    @property
    def models(self) -> Any:
        if self._models is None:
            from qdrant_client import models

            self._models = models
        return self._models

    def describe(self) -> str:
        return f"qdrant:{self.url or self.location}/{self.collection}"

    def _unavailable(self, exc: Exception) -> BackendUnavailable:
        detail = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        return BackendUnavailable(
            f"vector backend qdrant at {self.url or self.location} (setting "
            f"PAI_MEMORY_QDRANT_URL, collection {self.collection}) failed: {detail}; "
            "nothing was changed",
        )

    def _call(self, method: str, **kwargs: Any) -> Any:
        try:
            return getattr(self.client, method)(**kwargs)
        except (MissingDependency, BackendUnavailable):
            raise
        except Exception as exc:  # the client raises transport- and server-specific types
            raise self._unavailable(exc) from exc

    # ---------------------------------------------------------------- mirroring s_vectors

    def _points(self, rows: list[tuple[Any, bytes, str, float]]) -> list[Any]:
        import numpy as np

        return [
            self.models.PointStruct(
                id=int(doc_id),
                vector=np.frombuffer(blob, dtype=np.float32).tolist(),
                payload={"kind": kind, "at": float(at)},
            )
            for doc_id, blob, kind, at in rows
        ]

    def _upsert(self, rows: list[tuple[Any, bytes, str, float]]) -> None:
        for i in range(0, len(rows), _BATCH):
            points = self._points(rows[i : i + _BATCH])
            self._call("upsert", collection_name=self.collection, points=points, wait=True)

    def _reload(self, conn: sqlite3.Connection, head: int) -> None:
        rows = conn.execute(self._SELECT + " ORDER BY v.doc_id").fetchall()
        if rows:
            self.dim = len(rows[0][1]) // 4
        m = self.models
        if self._call("collection_exists", collection_name=self.collection):
            self._call("delete_collection", collection_name=self.collection)
        self._call(
            "create_collection",
            collection_name=self.collection,
            vectors_config=m.VectorParams(size=self.dim, distance=m.Distance.COSINE),
        )
        if self.url:  # local mode has no payload indexes
            for field, schema in (
                ("kind", m.PayloadSchemaType.KEYWORD),
                ("at", m.PayloadSchemaType.FLOAT),
            ):
                self._call(
                    "create_payload_index",
                    collection_name=self.collection,
                    field_name=field,
                    field_schema=schema,
                )
        self._upsert(rows)
        self._row = {int(r[0]): 0 for r in rows}  # membership only: Qdrant holds the rows
        self._matrix = True  # loaded
        self._n, self._dead, self._seq = len(rows), 0, head
        self.full_loads += 1

    def _patch(self, conn: sqlite3.Connection, changed: list[int]) -> None:
        found: dict[int, tuple[Any, bytes, str, float]] = {}
        for i in range(0, len(changed), 500):
            chunk = changed[i : i + 500]
            query = self._SELECT + f" WHERE v.doc_id IN ({','.join('?' * len(chunk))})"
            for row in conn.execute(query, chunk):
                found[int(row[0])] = row
        if any(len(row[1]) != 4 * self.dim for row in found.values()):
            self._reload(conn, self._seq)  # another model's vectors: a new collection
            return
        gone = [d for d in changed if d not in found and d in self._row]
        if gone:
            self._call(
                "delete",
                collection_name=self.collection,
                points_selector=self.models.PointIdsList(points=gone),
                wait=True,
            )
            for d in gone:
                del self._row[d]
        self._upsert(list(found.values()))
        self._row.update((d, 0) for d in found)
        self._n = len(self._row)

    def rebuild(self, conn: sqlite3.Connection) -> int:
        """Recreate the collection from ``s_vectors`` now (``pai membrane reindex``, a memory
        migrated to Qdrant); return how many points Qdrant holds afterwards."""
        with self._lock:
            head = conn.execute("SELECT coalesce(max(seq), 0) FROM s_vector_log").fetchone()[0]
            self._reload(conn, int(head))
            self._data_version = (-1, -1)  # the next search re-checks the log
            return self.count()

    def count(self) -> int:
        """Points in the collection (0 when it does not exist)."""
        if not self._call("collection_exists", collection_name=self.collection):
            return 0
        result = self._call("count", collection_name=self.collection, exact=True)
        return int(result.count)

    # ---------------------------------------------------------------- search

    def search(
        self,
        conn: sqlite3.Connection,
        query: Any,
        k: int,
        *,
        kinds: Sequence[str] | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> list[tuple[int, float]]:
        """The ``k`` nearest documents by cosine among those matching the filters, which
        Qdrant applies while searching (never after taking the top k)."""
        import numpy as np

        with self._lock:
            self._refresh(conn)
            if self._n == 0 or k <= 0 or (kinds is not None and not kinds):
                return []
            m = self.models
            must: list[Any] = []
            if kinds is not None:
                must.append(m.FieldCondition(key="kind", match=m.MatchAny(any=list(kinds))))
            if since is not None or until is not None:
                must.append(m.FieldCondition(key="at", range=m.Range(gte=since, lte=until)))
            ask = {
                "collection_name": self.collection,
                "query": np.asarray(query, dtype=np.float32).tolist(),
                "limit": int(k),
                "query_filter": m.Filter(must=must) if must else None,
                "with_payload": False,
            }
            try:
                result = self._call("query_points", **ask)
            except BackendUnavailable:
                if self._call("collection_exists", collection_name=self.collection):
                    raise
                self._reload(conn, self._seq)  # the collection was lost: rebuilt from SQLite
                result = self._call("query_points", **ask)
            return [(int(p.id), float(p.score)) for p in result.points]

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
