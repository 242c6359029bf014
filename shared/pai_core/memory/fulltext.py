"""The full-text index (SQLite FTS5, BM25) shared by facts, notes and episodes.

Documents live in ``s_docs`` (kind, ref, title, body, area, time, entity names) and their text
in the FTS5 table ``s_fts`` keyed by the same rowid. The index is derived data: it can always
be rebuilt from the graph, the vault and the episodes (``pai membrane reindex``).
"""

from __future__ import annotations

import json
import re
import sqlite3
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from pai_core.memory.db import Database

__all__ = ["COMMON_MIN_DOCS", "COMMON_SHARE", "Hit", "SearchIndex", "fts_query", "query_words"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS s_docs (
    id INTEGER PRIMARY KEY, kind TEXT NOT NULL, ref TEXT NOT NULL, title TEXT NOT NULL,
    body TEXT NOT NULL, area TEXT, at REAL NOT NULL, entities TEXT NOT NULL,
    UNIQUE(kind, ref));
CREATE INDEX IF NOT EXISTS s_docs_at ON s_docs(kind, at);
CREATE VIRTUAL TABLE IF NOT EXISTS s_fts USING fts5(title, body, tokenize='porter unicode61');
CREATE TABLE IF NOT EXISTS s_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS s_vectors (doc_id INTEGER PRIMARY KEY, hash TEXT NOT NULL,
    vec BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS s_vectors_hash ON s_vectors(hash);
CREATE TABLE IF NOT EXISTS s_pending (doc_id INTEGER PRIMARY KEY);
CREATE TABLE IF NOT EXISTS s_vector_log (seq INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id INTEGER NOT NULL);
"""
# Every change to s_vectors, by any writer, is logged: the in-memory matrix of
# membrane's vector store (pai_membrane.search.vector_store) follows the log.
_TRIGGERS = [
    f"CREATE TRIGGER IF NOT EXISTS s_vectors_{event.lower()} AFTER {event} ON s_vectors "
    f"BEGIN INSERT INTO s_vector_log (doc_id) VALUES ({row}.doc_id); END"
    for event, row in (("INSERT", "new"), ("UPDATE", "new"), ("DELETE", "old"))
]
_WORD = re.compile(r"\w+", re.UNICODE)
# Words that match nearly every document: they cost time and add nothing to the ranking.
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "can",
        "did",
        "do",
        "does",
        "for",
        "from",
        "had",
        "has",
        "have",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "me",
        "my",
        "no",
        "not",
        "of",
        "on",
        "or",
        "our",
        "so",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
    ]
)


# A word found in more documents than this share of the index (and than COMMON_MIN_DOCS) is
# common: it is left out of full-text queries. BM25 gives such a word little weight (FTS5's
# bm25 gives a word in more than half of the documents none at all), while its list of
# documents is the longest to walk: at 110k documents an OR query with one word found in most
# of them took ~270 ms, and ~15 ms without the common words (benchmarks/results/
# membrane_search.md). The floor keeps a small index's words: cost only grows with size.
COMMON_SHARE = 0.05
COMMON_MIN_DOCS = 2000


def query_words(text: str) -> list[str]:
    """The distinct words of ``text`` that can match: lower case, no stopwords, at most 32."""
    words = [w for w in _WORD.findall(text.lower()) if len(w) > 1 and w not in STOPWORDS]
    return list(dict.fromkeys(words))[:32]


def fts_query(text: str | list[str], *, every_word: bool = False) -> str | None:
    """A safe FTS5 query: the words of ``text`` (without stopwords) as quoted terms, OR-ed, or
    AND-ed with ``every_word`` (selective, so cheap on a large index)."""
    words = query_words(text) if isinstance(text, str) else text
    joiner = " AND " if every_word else " OR "
    return joiner.join(f'"{w}"' for w in words) or None


@dataclass(frozen=True, slots=True)
class Hit:
    doc_id: int
    kind: str
    ref: str
    title: str
    snippet: str
    score: float
    at: float
    area: str | None
    entities: tuple[str, ...]


class SearchIndex:
    """The full-text index over a :class:`~pai_core.memory.db.Database` (or a file path)."""

    def __init__(self, db: Database | Path) -> None:
        self.db = db if isinstance(db, Database) else Database(db)
        self.path = self.db.path
        self.db.ensure_schema(
            "fulltext",
            [*_SCHEMA.split(";"), *_TRIGGERS],
            check="SELECT 1 FROM sqlite_master WHERE type='trigger' AND name='s_vectors_delete'",
        )
        # How many documents hold a word (counted up to the common limit), for as long as the
        # index stays within 10% of the size it had when the counts were taken.
        self._df: dict[str, int] = {}
        self._df_basis = 0
        self._size: tuple[tuple[int, int], int] = ((-1, -1), 0)

    def _conn(self) -> sqlite3.Connection:
        return self.db.conn()

    def write(self) -> AbstractContextManager[sqlite3.Connection]:
        """A write transaction on the memory's database (see :meth:`Database.write`)."""
        return self.db.write()

    def upsert(
        self,
        conn: sqlite3.Connection,
        kind: str,
        ref: str,
        title: str,
        body: str,
        *,
        at: float,
        area: str | None = None,
        entities: list[str] | None = None,
    ) -> None:
        row = conn.execute("SELECT id FROM s_docs WHERE kind=? AND ref=?", (kind, ref)).fetchone()
        ents = json.dumps(sorted({e.casefold() for e in entities or []}))
        if row:
            conn.execute(
                "UPDATE s_docs SET title=?, body=?, area=?, at=?, entities=? WHERE id=?",
                (title, body, area, at, ents, row[0]),
            )
            conn.execute("DELETE FROM s_fts WHERE rowid=?", (row[0],))
            conn.execute("DELETE FROM s_vectors WHERE doc_id=?", (row[0],))  # text changed
            doc_id = row[0]
        else:
            doc_id = conn.execute(
                "INSERT INTO s_docs (kind, ref, title, body, area, at, entities) "
                "VALUES (?,?,?,?,?,?,?)",
                (kind, ref, title, body, area, at, ents),
            ).lastrowid
        conn.execute("INSERT INTO s_fts (rowid, title, body) VALUES (?,?,?)", (doc_id, title, body))
        conn.execute("INSERT OR IGNORE INTO s_pending VALUES (?)", (doc_id,))  # needs a vector

    def delete(self, conn: sqlite3.Connection, kind: str, ref: str) -> None:
        row = conn.execute("SELECT id FROM s_docs WHERE kind=? AND ref=?", (kind, ref)).fetchone()
        if row:
            conn.execute("DELETE FROM s_fts WHERE rowid=?", (row[0],))
            conn.execute("DELETE FROM s_vectors WHERE doc_id=?", (row[0],))
            conn.execute("DELETE FROM s_pending WHERE doc_id=?", (row[0],))
            conn.execute("DELETE FROM s_docs WHERE id=?", (row[0],))

    def meta(self, key: str, default: str = "") -> str:
        row = self._conn().execute("SELECT value FROM s_meta WHERE key=?", (key,)).fetchone()
        return str(row[0]) if row else default

    def set_meta(self, conn: sqlite3.Connection, key: str, value: str) -> None:
        conn.execute("INSERT OR REPLACE INTO s_meta VALUES (?,?)", (key, value))

    def search(
        self,
        query: str,
        *,
        kinds: list[str],
        since: float | None = None,
        until: float | None = None,
        area: str | None = None,
        entity: str | None = None,
        limit: int = 20,
        every_word: bool = False,
    ) -> list[Hit]:
        words = query_words(query)
        if not words:
            return []
        telling = self.telling_words(words)
        if telling:
            match = fts_query(telling, every_word=every_word)
        elif every_word:
            return []  # only common words: nothing for full text to lift beside vectors
        else:
            match = fts_query(words, every_word=True)  # the most selective query they make
        where, args = self._filters(kinds, since, until, area, entity)
        conn = self._conn()
        unfiltered = since is None and until is None and not area and not entity
        if match and unfiltered and self._kinds(conn) <= set(kinds):
            hits = self._ranked_alone(conn, match, limit, where, args)
            if hits is not None:
                return hits
        sql = (
            "SELECT d.id, d.kind, d.ref, d.title, snippet(s_fts, 1, '[', ']', ' … ', 12), "
            "bm25(s_fts, 4.0, 1.0), d.at, d.area, d.entities FROM s_fts JOIN s_docs d "
            "ON d.id = s_fts.rowid WHERE s_fts MATCH ? AND "
            + " AND ".join(where)
            + " ORDER BY bm25(s_fts, 4.0, 1.0) LIMIT ?"
        )
        rows = conn.execute(sql, [match, *args, limit]).fetchall()
        return [
            Hit(r[0], r[1], r[2], r[3], r[4], -float(r[5]), r[6], r[7], tuple(json.loads(r[8])))
            for r in rows
        ]

    @staticmethod
    def _kinds(conn: sqlite3.Connection) -> set[str]:
        """The kinds of document the index holds (a few seeks in the (kind, at) index)."""
        rows = conn.execute(
            "WITH RECURSIVE k(kind) AS (SELECT min(kind) FROM s_docs UNION ALL "
            "SELECT (SELECT min(kind) FROM s_docs WHERE kind > k.kind) FROM k "
            "WHERE k.kind IS NOT NULL) SELECT kind FROM k WHERE kind IS NOT NULL"
        )
        return {str(r[0]) for r in rows}

    @staticmethod
    def _ranked_alone(
        conn: sqlite3.Connection, match: str, limit: int, where: list[str], args: list[object]
    ) -> list[Hit] | None:
        """The best ``limit`` matches when no filter leaves a document out: ranked by BM25 in
        the full-text table alone, then only those documents read, and their snippets made.
        Joined to ``s_docs`` in one query, SQLite reads every matching document's row for the
        sort: measured at 110k documents, a word in ~2,000 of them took 16-27 ms so against
        7-9 ms this way, an OR of two such words 9.0 against 3.5 ms, and a selective query
        0.37 against 0.55 ms. None if a match has no document (the joined query decides)."""
        ranked = conn.execute(
            "SELECT rowid, bm25(s_fts, 4.0, 1.0) FROM s_fts WHERE s_fts MATCH ? "
            "ORDER BY bm25(s_fts, 4.0, 1.0) LIMIT ?",
            (match, limit),
        ).fetchall()
        if not ranked:
            return []
        ids = [int(r[0]) for r in ranked]
        marks = ",".join("?" * len(ids))
        docs = {
            r[0]: r
            for r in conn.execute(
                "SELECT d.id, d.kind, d.ref, d.title, d.at, d.area, d.entities FROM s_docs d "
                f"WHERE d.id IN ({marks}) AND " + " AND ".join(where),
                [*ids, *args],
            )
        }
        if len(docs) < len(ids):
            return None
        # one pass over the matches between the first and the last id (not one seek per id)
        snippets = dict(
            conn.execute(
                "SELECT rowid, snippet(s_fts, 1, '[', ']', ' … ', 12) FROM s_fts "
                f"WHERE s_fts MATCH ? AND rowid >= ? AND rowid <= ? AND +rowid IN ({marks})",
                [match, min(ids), max(ids), *ids],
            ).fetchall()
        )
        out = []
        for doc_id, score in ranked:
            r = docs[doc_id]
            entities = tuple(json.loads(r[6]))
            out.append(
                Hit(r[0], r[1], r[2], r[3], snippets[doc_id], -float(score), r[4], r[5], entities)
            )
        return out

    def docs(
        self,
        ids: list[int],
        *,
        kinds: list[str],
        since: float | None = None,
        until: float | None = None,
        area: str | None = None,
        entity: str | None = None,
    ) -> dict[int, Hit]:
        """The documents among ``ids`` that pass the filters (snippet: the start of the body)."""
        if not ids:
            return {}
        where, args = self._filters(kinds, since, until, area, entity)
        sql = (
            "SELECT d.id, d.kind, d.ref, d.title, substr(d.body, 1, 200), 0, d.at, d.area, "
            f"d.entities FROM s_docs d WHERE d.id IN ({','.join('?' * len(ids))}) AND "
            + " AND ".join(where)
        )
        rows = self._conn().execute(sql, [*ids, *args]).fetchall()
        return {
            r[0]: Hit(
                r[0],
                r[1],
                r[2],
                r[3],
                " ".join(r[4].split()),
                0.0,
                r[6],
                r[7],
                tuple(json.loads(r[8])),
            )
            for r in rows
        }

    def size(self) -> int:
        """How many documents the index holds (counted again only after a write)."""
        conn = self._conn()
        version = (int(conn.execute("PRAGMA data_version").fetchone()[0]), conn.total_changes)
        seen, size = self._size
        if version != seen:
            size = int(conn.execute("SELECT count(*) FROM s_docs").fetchone()[0])
            self._size = (version, size)
        return size

    def common_limit(self, size: int | None = None) -> int:
        """A word in more documents than this is common (see ``COMMON_SHARE``)."""
        n = self.size() if size is None else size
        return int(min(n / 2, max(COMMON_SHARE * n, COMMON_MIN_DOCS)))

    def telling_words(self, words: list[str]) -> list[str]:
        """``words`` without the common ones. Counting stops past the limit, so a lookup costs
        at most a walk over that many documents, and counts are kept while the index size
        stays within 10% of what it was when they were taken.

        Measured at 110k documents in a fresh process (every word new): 1.0 / 2.2 ms p50 / p95
        a six-word query. FTS5's vocab table (fts5vocab) is slower here, 8-12 / 16-17 ms: it
        reads a word's whole list of documents, with no limit, and wants the stemmed term."""
        n = self.size()
        limit = self.common_limit(n)
        if abs(n - self._df_basis) > 0.1 * max(self._df_basis, 1):
            self._df, self._df_basis = {}, n
        conn = self._conn()
        kept = []
        for word in words:
            count = self._df.get(word)
            if count is None:
                count = int(
                    conn.execute(
                        "SELECT count(*) FROM (SELECT 1 FROM s_fts WHERE s_fts MATCH ? LIMIT ?)",
                        (f'"{word}"', limit + 1),
                    ).fetchone()[0]
                )
                self._df[word] = count
            if count <= limit:
                kept.append(word)
        return kept

    @staticmethod
    def _filters(
        kinds: list[str],
        since: float | None,
        until: float | None,
        area: str | None,
        entity: str | None,
    ) -> tuple[list[str], list[object]]:
        # The unary + keeps SQLite from answering these through the (kind, at) index: callers
        # look documents up by rowid (full-text matches, nearest vectors), and scanning every
        # document of a kind instead took ~11 ms at 110k documents against ~0.3 ms.
        where = [f"+d.kind IN ({','.join('?' * len(kinds))})"]
        args: list[object] = [*kinds]
        if since is not None:
            where.append("+d.at >= ?")
            args.append(since)
        if until is not None:
            where.append("+d.at <= ?")
            args.append(until)
        if area:
            where.append("d.area = ?")
            args.append(area)
        if entity:
            where.append("d.entities LIKE ?")
            args.append(f'%"{entity.casefold()}"%')
        return where, args

    def waiting_for_vectors(self) -> int:
        """Documents whose vector has not been computed yet."""
        return int(self._conn().execute("SELECT count(*) FROM s_pending").fetchone()[0])

    def count(self, kind: str) -> int:
        return int(
            self._conn().execute("SELECT count(*) FROM s_docs WHERE kind=?", (kind,)).fetchone()[0]
        )
