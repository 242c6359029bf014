"""``pai memory migrate``: move a whole memory between the embedded store and Neo4j + Qdrant.

What moves, and where it lives on each side:

- the fact graph (entities, aliases, predicates, facts with their bi-temporal history, conflicts)
  moves between SQLite and Neo4j (:func:`pai_core.memory.graph.migrate.migrate_graph`, one write
  transaction on the target, verified by counts and a checksum per kind);
- notes stay in the vault (files are their truth), episodes and the full-text index stay in the
  memory's SQLite file, and so do the vectors: Qdrant is a search index rebuilt from them, by
  MemBrane (``pai membrane reindex --vectors``), since ``pai_core`` never imports a server.

Every part is counted and checksummed before and after; a part that should not have moved must
be unchanged, and a graph that changed on the source while it was copied (a server still
writing) fails the check. The full-text index's fact cursor is carried over to the new store's
numbering, so no fact is indexed twice or skipped.
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from pai_core.errors import InvalidInput, VerificationFailed

if TYPE_CHECKING:
    from pai_core.memory.graph.store import GraphStore
    from pai_core.settings import MemorySettings

__all__ = ["MemoryMigration", "PartCheck", "Target", "migrate_memory", "parse_target", "snapshot"]

GraphBackend = Literal["sqlite", "neo4j"]
VectorBackend = Literal["numpy", "qdrant"]


@dataclass(frozen=True, slots=True)
class Target:
    graph: GraphBackend
    vectors: VectorBackend


@dataclass(frozen=True, slots=True)
class PartCheck:
    """One line of the report: a kind of record, how many, its checksum, what happened."""

    kind: str
    count: int
    checksum: str
    status: str


@dataclass
class MemoryMigration:
    source: str
    target: str
    parts: list[PartCheck] = field(default_factory=list)
    next_steps: list[str] = field(default_factory=list)


def parse_target(text: str) -> Target:
    """``neo4j+qdrant``, ``neo4j``, ``sqlite``, ``sqlite+numpy``, ``sqlite+qdrant``…"""
    graph: GraphBackend | None = None
    vectors: VectorBackend | None = None
    for part in (p.strip().lower() for p in text.split("+")):
        if part in ("sqlite", "neo4j") and graph is None:
            graph = "sqlite" if part == "sqlite" else "neo4j"
        elif part in ("numpy", "qdrant") and vectors is None:
            vectors = "numpy" if part == "numpy" else "qdrant"
        else:
            raise InvalidInput(
                f"cannot migrate to {text!r}: {part!r} is not a backend (or is named twice)",
                field="--to",
                hint="Use neo4j+qdrant, or sqlite to come back to the embedded store.",
            )
    if graph is None:
        raise InvalidInput(
            f"cannot migrate to {text!r}: no graph backend named",
            field="--to",
            hint="Name the graph's backend: neo4j+qdrant or sqlite.",
        )
    return Target(graph, vectors or ("qdrant" if graph == "neo4j" else "numpy"))


def _digest(rows: list[bytes]) -> str:
    h = hashlib.sha256()
    for row in sorted(rows):
        h.update(hashlib.sha256(row).digest())
    return h.hexdigest()


def _table_rows(conn: sqlite3.Connection, sql: str, table: str) -> list[tuple[object, ...]]:
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (table,)
    ).fetchone()
    return conn.execute(sql).fetchall() if exists else []


def snapshot(settings: MemorySettings) -> dict[str, tuple[int, str]]:
    """(count, checksum) of the parts that never leave SQLite and the vault: notes (files),
    episodes and vectors (the truth Qdrant is rebuilt from)."""
    from pai_core.memory.db import Database

    root = settings.vault_dir
    notes = [
        p.relative_to(root).as_posix().encode() + b"\0" + p.read_bytes()
        for p in (sorted(root.rglob("*.md")) if root.is_dir() else [])
        if p.is_file()
    ]
    out = {"notes": (len(notes), _digest(notes))}
    db = Database(settings.db_file)
    try:
        with db.read() as conn:
            episodes = _table_rows(
                conn,
                "SELECT id, session_id, role, at, project, text, source FROM e_episodes",
                "e_episodes",
            )
            vectors = _table_rows(conn, "SELECT doc_id, hash, vec FROM s_vectors", "s_vectors")
    finally:
        db.close()
    out["episodes"] = (len(episodes), _digest([repr(r).encode() for r in episodes]))
    out["vectors"] = (len(vectors), _digest([repr(r).encode() for r in vectors]))
    return out


def _graph_store(settings: MemorySettings, backend: GraphBackend) -> GraphStore:
    if backend == "neo4j":
        from pai_core.memory.graph.neo4j_store import Neo4jGraphStore

        return Neo4jGraphStore.from_settings(settings)
    from pai_core.memory.graph.sqlite_store import SqliteGraphStore

    return SqliteGraphStore(settings.db_file)


def _carry_fact_cursor(settings: MemorySettings, source: GraphStore) -> None:
    """The full-text index remembers the last fact it indexed by the store's cursor; the copy
    numbers facts 1..n in the same order, so the cursor becomes the count of facts before it."""
    from pai_core.memory.fulltext import SearchIndex

    index = SearchIndex(settings.db_file)
    try:
        old = int(index.meta("facts_cursor", "0") or 0)
        if old <= 0:
            return
        done = 0
        with source.read() as tx:
            cursor = 0
            while rows := tx.facts_after(cursor, 5000):
                done += sum(1 for c, _ in rows if c <= old)
                if rows[-1][0] >= old:
                    break
                cursor = rows[-1][0]
        with index.write() as conn:
            index.set_meta(conn, "facts_cursor", str(done))
    finally:
        index.db.close()


def migrate_memory(
    settings: MemorySettings, target: Target, *, overwrite: bool = False
) -> MemoryMigration:
    """Move the memory described by ``settings`` (its current backends) to ``target``."""
    from pai_core.memory.graph.migrate import dump_graph, migrate_graph

    source_graph: GraphBackend = settings.graph_backend
    if source_graph == target.graph and settings.vector_backend == target.vectors:
        raise InvalidInput(
            f"the memory already uses graph {target.graph} and vectors {target.vectors} "
            "(settings PAI_MEMORY_GRAPH_BACKEND, PAI_MEMORY_VECTOR_BACKEND); nothing to move",
            field="--to",
            hint="Name the other backend, e.g. --to neo4j+qdrant or --to sqlite.",
        )
    before = snapshot(settings)
    report = MemoryMigration(
        source=f"graph {source_graph}, vectors {settings.vector_backend}",
        target=f"graph {target.graph}, vectors {target.vectors}",
    )
    if source_graph != target.graph:
        src = _graph_store(settings, source_graph)
        try:
            dst = _graph_store(settings, target.graph)
            try:
                moved = migrate_graph(src, dst, replace=overwrite)
                again = dump_graph(src)
                if again.checksums() != moved.checksums:
                    raise VerificationFailed(
                        f"the graph in {src.describe()} changed while it was copied (a server "
                        "is still writing to it); the copy in the target is incomplete",
                        hint="Stop the PAI servers, then migrate again with --overwrite.",
                    )
                _carry_fact_cursor(settings, src)
            finally:
                dst.close()
        finally:
            src.close()
        report.source += f" ({moved.source})"
        report.target += f" ({moved.target})"
        for kind, count in moved.counts.items():
            report.parts.append(
                PartCheck(kind, count, moved.checksums[kind], "copied, same on both sides")
            )
    after = snapshot(settings)
    for kind, (count, digest) in before.items():
        if after[kind] != (count, digest):
            raise VerificationFailed(
                f"{kind} changed while the memory was migrated ({count} -> {after[kind][0]}): "
                "a server is still writing to it",
                hint="Stop the PAI servers, then migrate again with --overwrite.",
            )
        where = "vault files" if kind == "notes" else f"in {settings.db_file}"
        report.parts.append(PartCheck(kind, count, digest, f"stay {where}, unchanged"))
    report.next_steps = _next_steps(settings, target)
    return report


def _next_steps(settings: MemorySettings, target: Target) -> list[str]:
    steps = [
        f'set graph_backend = "{target.graph}" and vector_backend = "{target.vectors}" in '
        f"[memory] (PAI_MEMORY_GRAPH_BACKEND={target.graph}, "
        f"PAI_MEMORY_VECTOR_BACKEND={target.vectors}), then restart the PAI servers"
    ]
    if target.vectors == "qdrant" and not settings.qdrant_url:
        steps.append(
            "PAI_MEMORY_QDRANT_URL is not set: Qdrant runs in local mode, in each server "
            "process, built from the vectors in SQLite at its first search"
        )
    return steps
