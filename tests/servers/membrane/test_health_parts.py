"""health says how many learnings still wait for their part vectors (they follow the whole-text
vectors in the background)."""

from __future__ import annotations

from pathlib import Path

from pai_core.settings import MemorySettings
from pai_membrane.memory import MembraneMemory
from pai_membrane.server import _probe
from pai_membrane.settings import MembraneSettings


def test_health_counts_learnings_waiting_for_part_vectors(tmp_path: Path) -> None:
    where = MemorySettings(db_path=tmp_path / "memory.db", vault_path=tmp_path / "vault")
    settings = MembraneSettings(
        data_dir=tmp_path, embeddings=False, watch_vault=False, memory=where
    )
    memory = MembraneMemory(settings)
    try:
        memory.indexer.stop()
        note = memory.ready_vault().write_learning("Title", "It broke.", "Fixed it.", "Check.")
        assert _probe(settings, memory)["details"]["learnings_waiting_for_part_vectors"] == 0
        conn = memory.index.db.conn()
        (doc,) = conn.execute("SELECT id FROM s_docs WHERE ref=?", (note.path,)).fetchone()
        with memory.index.write() as wconn:  # its whole-text vector is in; its parts are not
            memory.search.vectors.want_parts(wconn, [doc])
        assert _probe(settings, memory)["details"]["learnings_waiting_for_part_vectors"] == 1
    finally:
        memory.stop()
