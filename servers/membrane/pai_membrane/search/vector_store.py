"""The vector store: vectors as BLOBs in the same SQLite file, searched in memory with NumPy.

``s_vectors`` holds one normalised float32 vector per document. The store keeps them as one
matrix in memory (an extension-free brute-force dot product, the fastest way measured here)
together with each row's document kind and time, so a search limited to some kinds or to a
time window ranks only those rows instead of dropping the rest after the fact.

Triggers append every insert and delete of ``s_vectors`` to ``s_vector_log``, whoever makes
it (this store, the index dropping the vector of a changed text, another process), so the
matrix follows the table exactly: a few changes are applied to the rows they touch (a note
written and searched at once costs milliseconds, not a reload of 100k vectors); many, or a
log pruned past what this process has seen, reload the whole matrix. Another backend
implements :class:`VectorStore`.

``s_part_vectors`` holds, for a document made of sections (a learning's title, problem,
solution and takeaway), one vector per part, stored with the hash of the text they came from.
They are not in the matrix: search reads them only for the few nearest documents, to rerank
those (``MemorySearch``), and ignores parts whose hash no longer matches the document's vector.
``s_part_pending`` lists documents whose whole-text vector is in but whose parts are still to
be embedded (they are computed after every waiting document has its whole-text vector).
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Sequence
from typing import Any, Protocol

__all__ = ["LOG_KEEP", "NumpyVectorStore", "VectorStore", "text_hash"]

_PARTS_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS s_part_vectors (doc_id INTEGER PRIMARY KEY, hash TEXT NOT NULL, "
    "vecs BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS s_part_pending (doc_id INTEGER PRIMARY KEY)",
)

# Log entries kept after pruning: a process further behind than this reloads the matrix.
LOG_KEEP = 20_000
_PRUNE_AT = 2 * LOG_KEEP
_DEAD = -1
# Rows copied at a time into the column-major matrix on a reload.
_FILL_ROWS = 4096


def _matrix(rows: int, dim: int) -> Any:
    """An empty matrix of ``rows`` vectors, stored column by column (Fortran order): the
    product with a query then runs as BLAS's plain matrix-vector kernel over one contiguous
    stream, which OpenBLAS does in about half the time of the transposed kernel a row-major
    matrix needs (110k x 384 on one thread, 2 loaded cores: 13.3 against 26.9 ms p50;
    benchmarks/membrane_search_profile.py). Rows are still indexed as rows."""
    import numpy as np

    return np.zeros((rows, dim), dtype=np.float32, order="F")


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


class VectorStore(Protocol):
    def add(self, conn: sqlite3.Connection, items: list[tuple[int, str, Any]]) -> None: ...
    def delete(self, conn: sqlite3.Connection, doc_ids: list[int]) -> None: ...
    def missing(self, conn: sqlite3.Connection, limit: int) -> list[tuple[int, str]]: ...
    def pending(self, conn: sqlite3.Connection, doc_ids: Sequence[int]) -> set[int]: ...
    def add_parts(self, conn: sqlite3.Connection, items: list[tuple[int, str, Any]]) -> None: ...
    def parts(self, conn: sqlite3.Connection, doc_ids: Sequence[int]) -> dict[int, Any]: ...
    def search(
        self,
        conn: sqlite3.Connection,
        query: Any,
        k: int,
        *,
        kinds: Sequence[str] | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> list[tuple[int, float]]: ...


class NumpyVectorStore:
    """Vectors as BLOBs in ``s_vectors``; search over a matrix kept in memory and patched from
    ``s_vector_log`` when anyone has changed the table."""

    def __init__(self, dim: int = 384) -> None:
        self.dim = dim  # until vectors are read: then theirs
        self.full_loads = 0  # how often the whole matrix was read (for tests and health)
        self._lock = threading.Lock()
        self._data_version: tuple[int, int] = (-1, -1)
        self._seq = -1  # the last log entry the matrix reflects
        self._n = 0  # rows in use (live and dead)
        self._dead = 0
        self._row: dict[int, int] = {}
        self._kind_codes: dict[str, int] = {}
        self._ids: Any = None
        self._matrix: Any = None
        self._kinds: Any = None
        self._at: Any = None
        self._parts_table = False  # whether s_part_vectors was seen (then it is not looked up)

    # ---------------------------------------------------------------- writes

    def add(self, conn: sqlite3.Connection, items: list[tuple[int, str, Any]]) -> None:
        conn.executemany(
            "INSERT OR REPLACE INTO s_vectors VALUES (?,?,?)",
            [(doc_id, h, vec.astype("float32").tobytes()) for doc_id, h, vec in items],
        )
        conn.executemany("DELETE FROM s_pending WHERE doc_id=?", [(d,) for d, _, _ in items])
        self._prune(conn)

    def delete(self, conn: sqlite3.Connection, doc_ids: list[int]) -> None:
        conn.executemany("DELETE FROM s_vectors WHERE doc_id=?", [(d,) for d in doc_ids])
        if self._has_parts(conn):
            for table in ("s_part_vectors", "s_part_pending"):
                conn.executemany(f"DELETE FROM {table} WHERE doc_id=?", [(d,) for d in doc_ids])

    # ---------------------------------------------------------------- part vectors

    @staticmethod
    def _has_parts(conn: sqlite3.Connection) -> bool:
        return (
            conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name='s_part_vectors'"
            ).fetchone()
            is not None
        )

    @staticmethod
    def _parts_schema(conn: sqlite3.Connection) -> None:
        for statement in _PARTS_SCHEMA:
            conn.execute(statement)

    def add_parts(self, conn: sqlite3.Connection, items: list[tuple[int, str, Any]]) -> None:
        """Keep each document's part vectors (a ``(parts, dim)`` array) under its text hash."""
        self._parts_schema(conn)
        conn.executemany(
            "INSERT OR REPLACE INTO s_part_vectors VALUES (?,?,?)",
            [(doc_id, h, vecs.astype("float32").tobytes()) for doc_id, h, vecs in items],
        )
        conn.executemany("DELETE FROM s_part_pending WHERE doc_id=?", [(d,) for d, _, _ in items])

    def want_parts(self, conn: sqlite3.Connection, doc_ids: list[int]) -> None:
        """These documents (whose whole-text vector is being stored) still need part vectors."""
        if doc_ids:
            self._parts_schema(conn)
            conn.executemany(
                "INSERT OR IGNORE INTO s_part_pending VALUES (?)", [(d,) for d in doc_ids]
            )

    def parts_missing(
        self, conn: sqlite3.Connection, limit: int
    ) -> tuple[list[tuple[int, str, str]], list[int]]:
        """Documents waiting for part vectors, as (id, text, its hash), and the entries to drop:
        documents gone, or changed since their whole-text vector was stored (a changed document
        is listed again once its new whole-text vector is in)."""
        if not self._has_parts(conn):
            return [], []
        rows = conn.execute(
            "SELECT p.doc_id, d.title || char(10) || d.body, v.hash FROM s_part_pending p "
            "LEFT JOIN s_docs d ON d.id = p.doc_id LEFT JOIN s_vectors v ON v.doc_id = p.doc_id "
            "LIMIT ?",
            (limit,),
        ).fetchall()
        live, stale = [], []
        for doc_id, text, h in rows:
            if text is not None and h == text_hash(text):
                live.append((int(doc_id), str(text), str(h)))
            else:
                stale.append(int(doc_id))
        return live, stale

    def parts_waiting(self, conn: sqlite3.Connection) -> int:
        """How many documents wait for their part vectors."""
        if not self._has_parts(conn):
            return 0
        return int(conn.execute("SELECT count(*) FROM s_part_pending").fetchone()[0])

    def drop_part_pending(self, conn: sqlite3.Connection, doc_ids: list[int]) -> None:
        conn.executemany("DELETE FROM s_part_pending WHERE doc_id=?", [(d,) for d in doc_ids])

    def cached_parts(self, conn: sqlite3.Connection, hashes: list[str]) -> dict[str, bytes]:
        """Part vectors already computed for texts with these hashes."""
        if not hashes or not self._has_parts(conn):
            return {}
        return self._by_hash(conn, "s_part_vectors", "vecs", hashes)

    def parts(self, conn: sqlite3.Connection, doc_ids: Sequence[int]) -> dict[int, Any]:
        """The current part vectors of those of ``doc_ids`` that have them (one read)."""
        import numpy as np

        ids = list(doc_ids)
        if not ids:
            return {}
        if not self._parts_table:  # once there, the table stays (nothing drops it)
            self._parts_table = self._has_parts(conn)
            if not self._parts_table:
                return {}
        out: dict[int, Any] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            # CROSS JOIN: the few documents with parts first, then their vectors' hash; the
            # other way round SQLite read the vector row (1.5 kB) of every id: 0.61 ms for 120
            # nearest at 110k documents, of which 0.28 ms is the part table's lookups
            rows = conn.execute(
                "SELECT p.doc_id, p.vecs FROM s_part_vectors p CROSS JOIN s_vectors v "
                "ON v.doc_id = p.doc_id AND v.hash = p.hash "
                f"WHERE p.doc_id IN ({','.join('?' * len(chunk))})",
                chunk,
            )
            for doc_id, blob in rows:
                if len(blob) % (4 * self.dim) == 0:  # another model's vectors are left out
                    out[int(doc_id)] = np.frombuffer(blob, dtype=np.float32).reshape(-1, self.dim)
        return out

    def _prune(self, conn: sqlite3.Connection) -> None:
        head, oldest = conn.execute(
            "SELECT coalesce(max(seq), 0), coalesce(min(seq), 0) FROM s_vector_log"
        ).fetchone()
        if head - oldest >= _PRUNE_AT:
            conn.execute("DELETE FROM s_vector_log WHERE seq <= ?", (head - LOG_KEEP,))

    def missing(self, conn: sqlite3.Connection, limit: int) -> list[tuple[int, str]]:
        """Documents whose text has no vector yet (new or changed since): ``s_pending``."""
        rows = conn.execute(
            "SELECT d.id, d.title || char(10) || d.body FROM s_pending p JOIN s_docs d "
            "ON d.id = p.doc_id LIMIT ?",
            (limit,),
        ).fetchall()
        return [(r[0], r[1]) for r in rows]

    def pending(self, conn: sqlite3.Connection, doc_ids: Sequence[int]) -> set[int]:
        """Which of ``doc_ids`` are still waiting for their vector."""
        ids = list(doc_ids)
        out: set[int] = set()
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            rows = conn.execute(f"SELECT doc_id FROM s_pending WHERE doc_id IN ({marks})", chunk)
            out.update(int(r[0]) for r in rows)
        return out

    def cached(self, conn: sqlite3.Connection, hashes: list[str]) -> dict[str, bytes]:
        return self._by_hash(conn, "s_vectors", "vec", hashes)

    @staticmethod
    def _by_hash(
        conn: sqlite3.Connection, table: str, column: str, hashes: list[str]
    ) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        for i in range(0, len(hashes), 500):
            chunk = hashes[i : i + 500]
            for h, blob in conn.execute(
                f"SELECT hash, {column} FROM {table} WHERE hash IN ({','.join('?' * len(chunk))})",
                chunk,
            ):
                out[h] = blob
        return out

    # ---------------------------------------------------------------- the matrix

    def _code(self, kind: str) -> int:
        return self._kind_codes.setdefault(kind, len(self._kind_codes))

    def _refresh(self, conn: sqlite3.Connection) -> None:
        # PRAGMA data_version moves when another connection commits, total_changes when this
        # one writes: without either, nothing can have changed.
        data_version = (int(conn.execute("PRAGMA data_version").fetchone()[0]), conn.total_changes)
        if self._matrix is not None and data_version == self._data_version:
            return
        self._data_version = data_version
        head, oldest = conn.execute(
            "SELECT coalesce(max(seq), 0), coalesce(min(seq), 0) FROM s_vector_log"
        ).fetchone()
        if self._matrix is not None and head == self._seq:
            return
        if self._matrix is None or (oldest > self._seq + 1 and head > self._seq):
            self._reload(conn, head)
            return
        changed = [
            r[0]
            for r in conn.execute(
                "SELECT DISTINCT doc_id FROM s_vector_log WHERE seq > ? AND seq <= ?",
                (self._seq, head),
            )
        ]
        if len(changed) > max(1000, self._n // 10):
            self._reload(conn, head)
            return
        self._patch(conn, changed)
        self._seq = head
        if self._dead > max(1000, self._n // 4):
            self._reload(conn, head)  # compact

    _SELECT = (
        "SELECT v.doc_id, v.vec, d.kind, d.at FROM s_vectors v JOIN s_docs d ON d.id = v.doc_id"
    )

    def _reload(self, conn: sqlite3.Connection, head: int) -> None:
        import numpy as np

        rows = conn.execute(self._SELECT + " ORDER BY v.doc_id").fetchall()
        n = len(rows)
        if n:
            self.dim = len(rows[0][1]) // 4  # the stored model's dimension, whatever it is
        capacity = max(64, n + n // 4)
        self._ids = np.full(capacity, _DEAD, dtype=np.int64)
        self._ids[:n] = np.fromiter((r[0] for r in rows), dtype=np.int64, count=n)
        self._matrix = _matrix(capacity, self.dim)
        if n:
            flat = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32)
            # block by block: at 110k rows one strided copy of the whole took ~0.9 s, ~0.17 s so
            for i in range(0, n, _FILL_ROWS):
                j = min(n, i + _FILL_ROWS)
                self._matrix[i:j] = flat[i * self.dim : j * self.dim].reshape(j - i, self.dim)
        self._kinds = np.full(capacity, _DEAD, dtype=np.int16)
        self._kinds[:n] = [self._code(r[2]) for r in rows]
        self._at = np.zeros(capacity, dtype=np.float64)
        self._at[:n] = [r[3] for r in rows]
        self._row = {int(r[0]): i for i, r in enumerate(rows)}
        self._n, self._dead, self._seq = n, 0, head
        self.full_loads += 1

    def _patch(self, conn: sqlite3.Connection, changed: list[int]) -> None:
        import numpy as np

        found: dict[int, tuple[bytes, str, float]] = {}
        for i in range(0, len(changed), 500):
            chunk = changed[i : i + 500]
            for doc_id, blob, kind, at in conn.execute(
                self._SELECT + f" WHERE v.doc_id IN ({','.join('?' * len(chunk))})", chunk
            ):
                found[int(doc_id)] = (blob, kind, at)
        if any(len(blob) != 4 * self.dim for blob, _, _ in found.values()):
            self._reload(conn, self._seq)  # another model's vectors: read them in one go
            return
        for doc_id in changed:
            row = self._row.get(doc_id)
            if doc_id not in found:
                if row is not None:  # gone: the row stays, dead, until the next compaction
                    del self._row[doc_id]
                    self._ids[row] = _DEAD
                    self._kinds[row] = _DEAD
                    self._matrix[row] = 0.0
                    self._dead += 1
                continue
            blob, kind, at = found[doc_id]
            if row is None:
                if self._n == len(self._ids):
                    self._grow()
                row = self._n
                self._n += 1
                self._row[doc_id] = row
                self._ids[row] = doc_id
            self._matrix[row] = np.frombuffer(blob, dtype=np.float32)
            self._kinds[row] = self._code(kind)
            self._at[row] = at

    def _grow(self) -> None:
        import numpy as np

        capacity = 2 * len(self._ids)
        for name, fill in (("_ids", _DEAD), ("_kinds", _DEAD), ("_at", 0.0)):
            old = getattr(self, name)
            new = np.full(capacity, fill, dtype=old.dtype)
            new[: len(old)] = old
            setattr(self, name, new)
        matrix = _matrix(capacity, self.dim)
        matrix[: len(self._matrix)] = self._matrix
        self._matrix = matrix

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
        """The ``k`` nearest documents by cosine, among those of ``kinds`` recorded within
        ``since``..``until`` when given."""
        import numpy as np

        with self._lock:
            self._refresh(conn)
            n = self._n
            if n == 0 or k <= 0:
                return []
            scores = self._matrix[:n] @ query.astype(np.float32)
            keep = None
            if kinds is not None and not set(self._kind_codes) <= set(kinds):
                codes = [self._kind_codes[c] for c in kinds if c in self._kind_codes]
                keep = np.isin(self._kinds[:n], codes)
            elif self._dead:  # every kind asked for: only dead rows are left out
                keep = self._kinds[:n] != _DEAD
            if since is not None:
                keep = (self._at[:n] >= since) if keep is None else keep & (self._at[:n] >= since)
            if until is not None:
                keep = (self._at[:n] <= until) if keep is None else keep & (self._at[:n] <= until)
            if keep is not None:
                scores = np.where(keep, scores, -np.inf)
                k = min(k, int(keep.sum()))
            k = min(k, n)
            if k == 0:
                return []
            top = np.argpartition(-scores, k - 1)[:k]
            top = top[np.argsort(-scores[top])]
            return [(int(self._ids[i]), float(scores[i])) for i in top]
