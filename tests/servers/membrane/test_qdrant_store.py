"""The Qdrant vector store beyond the shared contract: payload and pushed-down filters, a lost
collection rebuilt from SQLite, clear errors, and no client import unless chosen."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pai_core.errors import BackendUnavailable
from pai_core.memory.fulltext import SearchIndex
from pai_membrane.search.qdrant_store import QdrantVectorStore
from tests.conftest import free_port


def _unit(*v: float) -> np.ndarray:
    a = np.array(list(v) + [0.0] * (384 - len(v)), dtype=np.float32)
    return a / np.linalg.norm(a)


def _index_with(tmp_path: Path, store: QdrantVectorStore, n: int) -> tuple[SearchIndex, list[int]]:
    index = SearchIndex(tmp_path / "m.db")
    with index.write() as w:
        for i in range(n):
            index.upsert(w, "episode" if i % 2 else "note", f"d{i}", f"t{i}", f"b{i}", at=float(i))
        ids = [r[0] for r in w.execute("SELECT id FROM s_docs ORDER BY id")]
        store.add(w, [(d, f"h{d}", _unit(1, 0.01 * i)) for i, d in enumerate(ids)])
    return index, ids


def test_points_carry_kind_and_time_and_filters_go_into_the_query(tmp_path: Path) -> None:
    store = QdrantVectorStore()
    index, ids = _index_with(tmp_path, store, 40)
    conn = index.db.conn()
    # the nearest overall are notes and episodes alike; one kind and a window still fill k
    got = store.search(conn, _unit(1, 0), 5, kinds=["episode"], since=10.0, until=30.0)
    assert len(got) == 5
    [point] = store.client.retrieve(store.collection, [got[0][0]], with_payload=True)
    assert point.payload["kind"] == "episode" and 10.0 <= point.payload["at"] <= 30.0
    assert all(ids.index(d) % 2 == 1 and 10 <= ids.index(d) <= 30 for d, _ in got)
    assert store.search(conn, _unit(1, 0), 5, kinds=[]) == []
    store.close()


def test_a_lost_collection_is_rebuilt_from_sqlite(tmp_path: Path) -> None:
    store = QdrantVectorStore()
    index, ids = _index_with(tmp_path, store, 10)
    conn = index.db.conn()
    assert len(store.search(conn, _unit(1), 20)) == 10
    store.client.delete_collection(store.collection)
    assert sorted(d for d, _ in store.search(conn, _unit(1), 20)) == ids
    assert store.full_loads == 2
    store.close()


def test_an_unreachable_server_is_one_clear_error(tmp_path: Path) -> None:
    port = free_port()
    store = QdrantVectorStore(url=f"http://127.0.0.1:{port}", api_key="k3y-never-shown")
    index = SearchIndex(tmp_path / "m.db")
    with index.write() as w:
        index.upsert(w, "note", "a", "a", "a", at=0.0)
    with pytest.raises(BackendUnavailable) as info:
        store.search(index.db.conn(), _unit(1), 1)
    message = str(info.value)
    assert "qdrant" in message and f"127.0.0.1:{port}" in message and "\n" not in message
    assert "k3y-never-shown" not in message


def test_the_client_is_not_imported_unless_chosen() -> None:
    code = (
        "import sys\n"
        "import pai_membrane.search.service, pai_membrane.search.qdrant_store\n"
        "assert 'qdrant_client' not in sys.modules, 'qdrant_client imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
