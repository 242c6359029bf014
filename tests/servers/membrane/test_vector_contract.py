"""The vector-store contract: numpy over SQLite BLOBs, Qdrant local mode, a Qdrant server."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from pai_core.memory.fulltext import SearchIndex
from pai_membrane.search.vector_store import NumpyVectorStore


def _unit(v: list[float]) -> np.ndarray:
    a = np.array(v + [0.0] * (384 - len(v)), dtype=np.float32)
    return a / np.linalg.norm(a)


@pytest.fixture(params=["numpy-sqlite", "qdrant-local", "qdrant-server"])
def setup(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[SearchIndex, NumpyVectorStore]]:
    index = SearchIndex(tmp_path / "m.db")
    if request.param == "numpy-sqlite":
        yield index, NumpyVectorStore()
        return
    from pai_membrane.search.qdrant_store import QdrantVectorStore

    url = os.environ.get("PAI_TEST_QDRANT_URL")
    if request.param == "qdrant-server" and not url:
        pytest.skip(
            "no Qdrant server here: set PAI_TEST_QDRANT_URL to run the vector contract on it"
        )
    store = QdrantVectorStore(
        url=url if request.param == "qdrant-server" else None,
        api_key=os.environ.get("PAI_TEST_QDRANT_API_KEY") or None,
        collection=f"pai_test_{uuid.uuid4().hex[:12]}",
    )
    yield index, store
    if request.param == "qdrant-server":
        store.client.delete_collection(store.collection)
    store.close()


def test_pending_add_search_delete(setup: tuple[SearchIndex, NumpyVectorStore]) -> None:
    index, store = setup
    with index.write() as conn:
        for i, text in enumerate(["alpha", "beta", "gamma"]):
            index.upsert(conn, "note", f"n{i}", text, text, at=float(i))
    conn = index.db.conn()
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
    conn = index.db.conn()
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


def _docs(index: SearchIndex, n: int, kind: str = "note", at: float = 0.0) -> list[int]:
    with index.write() as w:
        for i in range(n):
            index.upsert(w, kind, f"{kind}-{at}-{i}", f"t{i}", f"body {i}", at=at + i)
        return [
            r[0]
            for r in w.execute(
                "SELECT id FROM s_docs WHERE kind=? AND ref LIKE ? ORDER BY id",
                (kind, f"{kind}-{at}-%"),
            )
        ]


def test_a_re_embedded_document_is_found_by_its_new_vector(
    setup: tuple[SearchIndex, NumpyVectorStore],
) -> None:
    index, store = setup
    a, b = _docs(index, 2)
    with index.write() as w:
        store.add(w, [(a, "ha", _unit([1, 0])), (b, "hb", _unit([0, 1]))])
    conn = index.db.conn()
    assert store.search(conn, _unit([0, 0, 1]), 1)[0][1] < 0.01
    with index.write() as w:  # the text changes, then its new vector arrives: same count
        index.upsert(w, "note", "note-0.0-0", "t0", "new text", at=9.0)
        store.add(w, [(a, "ha2", _unit([0, 0, 1]))])
    best = store.search(conn, _unit([0, 0, 1]), 1)
    assert best[0][0] == a and best[0][1] > 0.99
    assert store.full_loads == 1  # the row was patched, not the matrix reloaded


def test_kind_and_time_filters_rank_only_matching_rows(
    setup: tuple[SearchIndex, NumpyVectorStore],
) -> None:
    index, store = setup
    episodes = _docs(index, 50, "episode", at=100.0)
    notes = _docs(index, 3, "note", at=0.0)
    with index.write() as w:  # episodes nearer the query than any note
        store.add(w, [(d, f"e{d}", _unit([1, 0.01 * i])) for i, d in enumerate(episodes)])
        store.add(w, [(d, f"n{d}", _unit([1, 1 + i])) for i, d in enumerate(notes)])
    conn = index.db.conn()
    query = _unit([1, 0])
    assert {d for d, _ in store.search(conn, query, 3)} <= set(episodes)
    assert [d for d, _ in store.search(conn, query, 3, kinds=["note"])] == notes
    assert store.search(conn, query, 5, kinds=["fact"]) == []
    window = store.search(conn, query, 10, kinds=["episode"], since=140.0, until=144.0)
    assert sorted(d for d, _ in window) == episodes[40:45]


def test_deleted_rows_are_never_returned_and_many_changes_reload(
    setup: tuple[SearchIndex, NumpyVectorStore],
) -> None:
    index, store = setup
    docs = _docs(index, 20)
    with index.write() as w:
        store.add(w, [(d, f"h{d}", _unit([1, 0.1 * i])) for i, d in enumerate(docs)])
    conn = index.db.conn()
    assert len(store.search(conn, _unit([1]), 50)) == 20
    with index.write() as w:
        store.delete(w, docs[:5])
    left = store.search(conn, _unit([1]), 50)
    assert sorted(d for d, _ in left) == docs[5:]
    assert store.full_loads == 1
    more = _docs(index, 1200, at=1000.0)
    with index.write() as w:
        store.add(w, [(d, f"m{d}", _unit([0, 1])) for d in more])
    assert len(store.search(conn, _unit([0, 1]), 2000)) == 15 + 1200
    assert store.full_loads == 2  # over a thousand changes: read again in one go


def test_a_reader_behind_a_pruned_log_reloads(
    setup: tuple[SearchIndex, NumpyVectorStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    from pai_membrane.search import vector_store

    monkeypatch.setattr(vector_store, "LOG_KEEP", 5)
    monkeypatch.setattr(vector_store, "_PRUNE_AT", 10)
    index, reader = setup
    docs = _docs(index, 30)
    conn = index.db.conn()
    with index.write() as w:
        reader.add(w, [(docs[0], "h0", _unit([1]))])
    assert [d for d, _ in reader.search(conn, _unit([1]), 5)] == [docs[0]]
    writer = NumpyVectorStore()
    for i, d in enumerate(docs[1:], 1):
        with index.write() as w:
            writer.add(w, [(d, f"h{d}", _unit([1, i]))])
    oldest = conn.execute("SELECT min(seq) FROM s_vector_log").fetchone()[0]
    assert oldest > 2  # entries this reader had not seen are gone
    assert len(reader.search(conn, _unit([1]), 50)) == 30
    assert reader.full_loads == 2


def test_vectors_of_another_dimension_are_read_as_stored(
    setup: tuple[SearchIndex, NumpyVectorStore],
) -> None:
    index, store = setup  # a store made for 384 dimensions, holding a 768-dimension model's
    a, b = _docs(index, 2)

    def unit768(i: int) -> np.ndarray:
        v = np.zeros(768, dtype=np.float32)
        v[i] = 1.0
        return v

    with index.write() as w:
        store.add(w, [(a, "ha", unit768(700))])
    conn = index.db.conn()
    assert store.search(conn, unit768(700), 1) == [(a, 1.0)]
    with index.write() as w:  # patched in, same dimension
        store.add(w, [(b, "hb", unit768(5))])
    assert [d for d, _ in store.search(conn, unit768(5), 2)] == [b, a]
