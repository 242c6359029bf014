"""The vector-store contract (numpy over SQLite BLOBs now; Qdrant would pass the same)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from pai_membrane.search.index import SearchIndex
from pai_membrane.search.vectors import NumpyVectorStore


def _unit(v: list[float]) -> np.ndarray:
    a = np.array(v + [0.0] * (384 - len(v)), dtype=np.float32)
    return a / np.linalg.norm(a)


@pytest.fixture(params=["numpy-sqlite"])
def setup(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[SearchIndex, NumpyVectorStore]]:
    index = SearchIndex(tmp_path / "m.db")
    yield index, NumpyVectorStore()


def test_pending_add_search_delete(setup: tuple[SearchIndex, NumpyVectorStore]) -> None:
    index, store = setup
    with index.write() as conn:
        for i, text in enumerate(["alpha", "beta", "gamma"]):
            index.upsert(conn, "note", f"n{i}", text, text, at=float(i))
    conn = index._conn()
    pending = store.missing(conn, 10)
    assert [t.split("\n")[0] for _, t in pending] == ["alpha", "beta", "gamma"]
    vecs = {
        pending[0][0]: _unit([1, 0]),
        pending[1][0]: _unit([0, 1]),
        pending[2][0]: _unit([1, 1]),
    }
    with index.write() as w:
        store.add(w, [(d, f"h{d}", v) for d, v in vecs.items()])
    assert store.missing(conn, 10) == []
    got = store.search(conn, _unit([1, 0.1]), 2)
    assert [d for d, _ in got] == [pending[0][0], pending[2][0]]
    assert got[0][1] > got[1][1]
    # changing a document's text makes it pending again and drops its stale vector
    with index.write() as w:
        index.upsert(w, "note", "n0", "alpha", "alpha changed", at=5.0)
    assert [d for d, _ in store.missing(conn, 10)] == [pending[0][0]]
    assert pending[0][0] not in [d for d, _ in store.search(conn, _unit([1, 0]), 3)]
    with index.write() as w:
        index.delete(w, "note", "n1")
    assert pending[1][0] not in [d for d, _ in store.search(conn, _unit([0, 1]), 3)]


def test_vectors_added_by_another_writer_are_seen(
    setup: tuple[SearchIndex, NumpyVectorStore], tmp_path: Path
) -> None:
    index, store = setup
    with index.write() as w:
        index.upsert(w, "note", "a", "a", "a", at=0.0)
    conn = index._conn()
    [(doc, _)] = store.missing(conn, 10)
    with index.write() as w:
        store.add(w, [(doc, "h", _unit([1]))])
    assert store.search(conn, _unit([1]), 1)[0][0] == doc
    other = SearchIndex(tmp_path / "m.db")  # another writer on the same file
    with other.write() as w:
        other.upsert(w, "note", "b", "b", "b", at=1.0)
        new_id = w.execute("SELECT id FROM s_docs WHERE ref='b'").fetchone()[0]
        NumpyVectorStore().add(w, [(new_id, "h2", _unit([0, 1]))])
    assert store.search(conn, _unit([0, 1]), 1)[0][0] == new_id  # refreshed, not stale
