"""`pai memory migrate`: a whole memory to Neo4j (ArcadeDB over Bolt) + Qdrant and back."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pai_core.cli import app
from pai_core.memory.episodes.ingest import EpisodeStore
from pai_core.memory.fulltext import SearchIndex
from pai_core.memory.graph.migrate import dump_graph
from pai_core.memory.graph.service import GraphService
from pai_core.memory.graph.sqlite_store import SqliteGraphStore
from pai_core.memory.migrate import parse_target
from pai_core.settings import MemorySettings
from tests.shared.memory.boltservers import BoltServer
from tests.shared.memory.conftest import Clock, bolt_store
from tests.shared.memory.test_migrate import _rich_graph


@pytest.fixture
def memory_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, arcadedb_server: BoltServer
) -> MemorySettings:
    for key in list(os.environ):
        if key.startswith("PAI_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("PAI_HOME", str(tmp_path / "pai"))
    monkeypatch.setenv("PAI_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("PAI_MEMORY_NEO4J_URI", arcadedb_server.uri)
    monkeypatch.setenv("PAI_MEMORY_NEO4J_USER", arcadedb_server.user)
    monkeypatch.setenv("PAI_MEMORY_NEO4J_PASSWORD", arcadedb_server.password)
    monkeypatch.setenv("PAI_MEMORY_NEO4J_DATABASE", arcadedb_server.database or "")
    arcadedb_server.wipe()
    settings = MemorySettings()
    store = SqliteGraphStore(settings.db_file)
    _rich_graph(GraphService(store, clock=Clock()), Clock())
    episodes = EpisodeStore(SearchIndex(store.db))
    with store.db.write() as conn:  # an episode and a vector
        episodes._add(conn, "e1", "s1", "user", 1.0, "pai", "zone transfer", "t.jsonl")
        conn.execute("INSERT INTO s_vectors VALUES (1, 'h', ?)", (b"\0" * 16,))
    store.close()
    note = settings.vault_dir / "3-Resources" / "tips.md"
    note.parent.mkdir(parents=True)
    note.write_text("# Tips\n\nzone transfers [[PAI]]\n")
    return settings


def _migrate(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["memory", "migrate", *args])
    return result.exit_code, result.output


def test_to_neo4j_and_back_verified_refusing_a_full_target(
    memory_env: MemorySettings, arcadedb_server: BoltServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = SqliteGraphStore(memory_env.db_file)
    want = dump_graph(source)
    source.close()
    code, out = _migrate("--to", "neo4j+qdrant")
    assert code == 0, out
    rows = {r.split()[0]: r.split(None, 4)[1:] for r in out.splitlines() if "sha256" in r}
    assert rows["facts"][0] == str(len(want.facts)) and rows["conflicts"][0] == "1"
    assert rows["facts"][2] == want.checksums()["facts"][:16]
    assert all(rows[k][3] == "copied, same on both sides" for k in want.counts())
    for kind in ("notes", "episodes", "vectors"):
        assert rows[kind][0] == "1" and rows[kind][3].endswith("unchanged"), out
    assert "PAI_MEMORY_GRAPH_BACKEND=neo4j" in out and "local mode" in out
    bolt = bolt_store(arcadedb_server)
    try:
        assert dump_graph(bolt).checksums() == want.checksums()
    finally:
        bolt.close()

    code, out = _migrate("--to", "neo4j")  # the target now holds a graph
    assert code == 2 and "not empty; nothing was changed" in out and "--overwrite" in out

    monkeypatch.setenv("PAI_MEMORY_GRAPH_BACKEND", "neo4j")
    code, out = _migrate("--to", "sqlite")  # back: the SQLite file still holds the old graph
    assert code == 2 and "not empty" in out
    code, out = _migrate("--to", "sqlite", "--overwrite")
    assert code == 0, out
    back = SqliteGraphStore(memory_env.db_file)
    try:
        assert dump_graph(back).checksums() == want.checksums()
    finally:
        back.close()


def test_unreachable_target_and_bad_names_are_one_clear_line(
    memory_env: MemorySettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out = _migrate("--to", "neo4j+mongo")
    assert code == 2 and "'mongo' is not a backend" in out
    code, out = _migrate("--to", "sqlite")
    assert code == 2 and "already uses graph sqlite" in out
    monkeypatch.setenv("PAI_MEMORY_NEO4J_URI", "bolt://127.0.0.1:9")
    code, out = _migrate("--to", "neo4j+qdrant")
    assert code == 2, out
    assert "graph backend neo4j at bolt://127.0.0.1:9" in out and "PAI_MEMORY_NEO4J_URI" in out
    assert len(out.strip().splitlines()) == 1
    monkeypatch.setenv("PAI_MEMORY_NEO4J_URI", "bolt://nobody:s3cret@127.0.0.1:9")
    code, out = _migrate("--to", "neo4j+qdrant")  # the driver refuses credentials in the URI
    assert code == 2 and "PAI_MEMORY_NEO4J_URI" in out and "s3cret" not in out
    assert parse_target("NEO4J").vectors == "qdrant" and parse_target("sqlite").vectors == "numpy"
