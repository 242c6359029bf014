"""``pai membrane reindex`` and ``pai membrane capture`` (the Claude Code SessionEnd hook)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pai_core.errors import PaiError
from pai_membrane.memory import MembraneMemory
from pai_membrane.settings import TRANSCRIPT_ROOTS, MembraneSettings

__all__ = ["capture", "reindex"]


def reindex(settings: MembraneSettings, argv: list[str]) -> int:
    """Rebuild the derived indexes (full text, vectors) from the graph, vault and episodes;
    with ``--vectors``, only Qdrant's collection from the stored vectors (no re-embedding)."""
    unknown = [a for a in argv if a != "--vectors"]
    if unknown:
        print(f"pai membrane reindex: unknown option(s) {unknown}; use --vectors", file=sys.stderr)
        return 2
    memory = MembraneMemory(settings)
    try:
        if "--vectors" in argv:
            return _rebuild_qdrant(memory, vectors_only=True)
        return _reindex(memory)
    finally:
        memory.stop()


def _rebuild_qdrant(memory: MembraneMemory, *, vectors_only: bool) -> int:
    """Build Qdrant's collection from ``s_vectors`` and check it holds every vector."""
    if memory.settings.vector_backend != "qdrant":
        if vectors_only:
            print(
                "pai membrane reindex --vectors: vector_backend is not 'qdrant' (setting "
                "PAI_MEMORY_VECTOR_BACKEND): the vectors are searched from SQLite, nothing to "
                "build",
                file=sys.stderr,
            )
        return 0
    from pai_membrane.search.qdrant_store import QdrantVectorStore

    vectors = QdrantVectorStore.from_settings(memory.settings)
    conn = memory.index.db.conn()
    try:
        stored = int(
            conn.execute(
                "SELECT count(*) FROM s_vectors v JOIN s_docs d ON d.id = v.doc_id"
            ).fetchone()[0]
        )
        held = vectors.rebuild(conn)
    finally:
        vectors.close()
    where = vectors.describe()
    if held != stored:
        print(
            f"pai membrane reindex: {where} holds {held} vectors of the {stored} stored in "
            f"{memory.settings.db_file}; run it again",
            file=sys.stderr,
        )
        return 1
    print(f"vectors: {held} in {where}, the same as in SQLite", file=sys.stderr)
    return 0


def _reindex(memory: MembraneMemory) -> int:
    index = memory.index
    memory.vault  # noqa: B018 - creates the vault's tables before they are emptied
    memory.episodes  # noqa: B018
    with index.write() as conn:
        for table in ("s_fts", "s_docs", "s_vectors", "s_meta"):
            conn.execute(f"DELETE FROM {table}")
        conn.execute("DELETE FROM v_notes")
    vault = memory.ready_vault()
    episodes = memory.episodes
    rows = (
        index.db.conn()
        .execute("SELECT id, session_id, role, at, project, text, source FROM e_episodes")
        .fetchall()
    )
    with index.write() as conn:
        conn.execute("DELETE FROM e_episodes")
        for eid, session, role, at, project, text, source in rows:
            episodes._add(conn, eid, session, role, at, project, text, source)
    facts = memory.search.sync_facts()
    vectors = memory.search.embed_pending()
    print(
        f"reindexed: {len(vault.list_notes(limit=100000))} notes, {len(rows)} episodes, "
        f"{facts} facts, {vectors} vectors",
        file=sys.stderr,
    )
    return _rebuild_qdrant(memory, vectors_only=False)


def capture(settings: MembraneSettings, argv: list[str]) -> int:
    """Read a Claude Code hook's JSON on stdin and ingest the session's transcript."""
    try:
        hook = json.loads(sys.stdin.read() or "{}")
    except json.JSONDecodeError as exc:
        print(f"pai membrane capture: hook input is not JSON: {exc}", file=sys.stderr)
        return 1
    path = hook.get("transcript_path")
    if not path:
        print("pai membrane capture: no transcript_path in the hook input", file=sys.stderr)
        return 1
    try:
        report = MembraneMemory(settings).episodes.ingest(
            Path(path), roots=settings.transcript_roots, setting=TRANSCRIPT_ROOTS
        )
    except PaiError as exc:
        print(f"pai membrane capture: {exc}", file=sys.stderr)
        return 1
    print(
        f"pai membrane: captured {report.added} new turn(s) of session {report.session_id} "
        f"({report.skipped_lines} unreadable line(s) skipped)",
        file=sys.stderr,
    )
    return 0
