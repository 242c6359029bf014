"""Full-text search ranks by BM25 in the FTS table alone when no filter leaves a document out,
and returns exactly what the query joined to the documents returns."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from pai_core.memory.fulltext import SearchIndex

WORDS = ["zone", "notify", "serial", "backup", "restore", "kernel", "swap", "queue", "retry"] + [
    f"w{i}" for i in range(40)
]
KINDS = ["fact", "note", "episode"]


@pytest.fixture
def index(tmp_path: Path) -> SearchIndex:
    index = SearchIndex(tmp_path / "m.db")
    rng = random.Random(4)
    with index.write() as w:
        for i in range(90):
            body = " ".join(rng.choices(WORDS, k=rng.randint(3, 12)))
            kind = KINDS[i % 3]
            index.upsert(w, kind, f"r{i}", f"doc {i} {rng.choice(WORDS)}", body, at=float(i))
    return index


def _joined(index: SearchIndex, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(SearchIndex, "_ranked_alone", staticmethod(lambda *a: None))


@pytest.mark.parametrize("every_word", [False, True])
@pytest.mark.parametrize("limit", [1, 5, 40])
def test_ranked_alone_returns_what_the_joined_query_returns(
    index: SearchIndex, monkeypatch: pytest.MonkeyPatch, every_word: bool, limit: int
) -> None:
    queries = ["zone notify", "backup", "kernel swap retry", "serial restore queue"]
    alone = [index.search(q, kinds=KINDS, limit=limit, every_word=every_word) for q in queries]
    _joined(index, monkeypatch)
    joined = [index.search(q, kinds=KINDS, limit=limit, every_word=every_word) for q in queries]
    assert alone == joined
    assert any(hits for hits in alone)
    assert any("[" in h.snippet for hits in alone for h in hits)  # the words are marked


def test_filters_still_leave_documents_out(index: SearchIndex) -> None:
    notes = index.search("backup restore", kinds=["note"], limit=50)
    assert notes and {h.kind for h in notes} == {"note"}
    recent = index.search("backup restore", kinds=KINDS, since=60.0, limit=50)
    assert recent and min(h.at for h in recent) >= 60.0
    every = index.search("backup restore", kinds=KINDS, limit=50)
    assert len(every) > len(notes)


def test_a_match_without_its_document_is_left_out(
    index: SearchIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    best = index.search("zone", kinds=KINDS, limit=3)
    with index.write() as w:  # the text is still in the FTS table, the document is gone
        w.execute("DELETE FROM s_docs WHERE id=?", (best[0].doc_id,))
    got = index.search("zone", kinds=KINDS, limit=3)
    assert best[0].doc_id not in {h.doc_id for h in got}
    assert [h.doc_id for h in got][:2] == [h.doc_id for h in best[1:]]
    _joined(index, monkeypatch)
    assert index.search("zone", kinds=KINDS, limit=3) == got
