"""The NumPy store's in-memory matrix: patched, grown and filtered, it ranks as a fresh load."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pai_core.memory.fulltext import SearchIndex
from pai_membrane.search.vector_store import NumpyVectorStore
from tests.servers.membrane.test_vector_contract import _docs, _unit


def test_naming_every_kind_still_leaves_deleted_rows_out(tmp_path: Path) -> None:
    index, store = SearchIndex(tmp_path / "m.db"), NumpyVectorStore()
    notes, episodes = _docs(index, 10, "note"), _docs(index, 10, "episode", at=50.0)
    with index.write() as w:
        store.add(w, [(d, f"h{d}", _unit([1, 0.1 * i])) for i, d in enumerate(notes + episodes)])
    conn = index.db.conn()
    every = ["fact", "note", "episode"]
    assert len(store.search(conn, _unit([1]), 50, kinds=every)) == 20
    gone = [notes[0], episodes[0], episodes[5]]
    with index.write() as w:
        store.delete(w, gone)
    left = [d for d, _ in store.search(conn, _unit([1]), 50, kinds=every)]
    assert sorted(left) == sorted(set(notes + episodes) - set(gone))
    assert sorted(d for d, _ in store.search(conn, _unit([1]), 50, kinds=["note"])) == notes[1:]
    assert store.full_loads == 1  # the deletions were patched in, not reloaded


def test_a_patched_and_grown_matrix_ranks_like_a_fresh_load(tmp_path: Path) -> None:
    index, store = SearchIndex(tmp_path / "m.db"), NumpyVectorStore()
    rng = np.random.default_rng(7)
    first, more = _docs(index, 40), _docs(index, 150, "episode", at=10.0)
    vecs = rng.standard_normal((190, 384)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    by_doc = dict(zip(first + more, vecs, strict=True))
    with index.write() as w:
        store.add(w, [(d, f"h{d}", by_doc[d]) for d in first])
    conn = index.db.conn()
    query = 0.8 * vecs[3] + 0.6 * vecs[100]
    query /= np.linalg.norm(query)
    assert store.search(conn, query, 5)[0][0] == first[3]
    with index.write() as w:  # past the first load's room: the matrix grows
        store.add(w, [(d, f"h{d}", by_doc[d]) for d in more])
    got = store.search(conn, query, 20)
    assert store.full_loads == 1
    fresh = NumpyVectorStore().search(conn, query, 20)
    assert [d for d, _ in got] == [d for d, _ in fresh]
    exact = sorted(by_doc, key=lambda d: -float(by_doc[d] @ query))[:20]
    assert [d for d, _ in got] == exact
    assert np.allclose([s for _, s in got], [float(by_doc[d] @ query) for d in exact], atol=1e-6)
