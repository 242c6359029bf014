"""Hybrid search's steps: its full-text query runs on another thread while the query is
embedded and ranked by vectors (what it finds is still fused in, what goes wrong still reaches
the caller), and only the documents it keeps are read, unless one of them is gone."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pai_core.errors import BackendUnavailable
from pai_core.memory.episodes.ingest import EpisodeStore
from pai_core.memory.fulltext import SearchIndex
from pai_core.memory.graph.service import GraphService
from pai_core.memory.graph.sqlite_store import SqliteGraphStore
from pai_membrane.search.service import MemorySearch


class _Axis:
    """Every text on one axis, but a text naming 'relay' on another: vectors alone rank the
    'relay' documents first for a query that names it."""

    dim = 384

    def embed(self, texts: Sequence[str]) -> Any:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            out[i, 1 if "relay" in text else 0] = 1.0
        return out


@pytest.fixture
def search(tmp_path: Path) -> MemorySearch:
    db = tmp_path / "m.db"
    index = SearchIndex(db)
    with index.write() as w:
        for i in range(30):
            body = "the mail relay queue" if i < 20 else f"backup of volume {i}"
            index.upsert(w, "note", f"n{i}.md", f"note {i}", body, at=float(i))
        index.upsert(w, "note", "pin.md", "pinned", "volume zx81 backup", at=99.0)
    search = MemorySearch(index, GraphService(SqliteGraphStore(db)), EpisodeStore(index), _Axis())
    search.embed_pending()
    return search


def test_the_text_query_runs_beside_and_its_matches_are_fused(
    search: MemorySearch, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[int] = []
    inner = search.index.search

    def recorded(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.get_ident())
        return inner(*args, **kwargs)

    monkeypatch.setattr(search.index, "search", recorded)
    hits = search.search("relay zx81", limit=5)
    assert threads and threads[0] != threading.get_ident()
    # zx81 is only in the pinned note's words ('relay', in most notes, is left out of the text
    # query), and its vector is far from the query's: full text alone lifts it
    assert hits[0].id == "pin.md"
    assert "pin.md" not in [h.id for h in search.search("relay zx81", limit=5, mode="vector")]


def test_a_failing_text_query_reaches_the_caller(
    search: MemorySearch, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise BackendUnavailable("the memory database is locked")

    monkeypatch.setattr(search.index, "search", broken)
    with pytest.raises(BackendUnavailable, match="locked"):
        search.search("relay zx81")
    assert search.search("relay zx81", mode="vector")  # vectors alone still answer


def test_a_nearest_document_that_is_gone_is_left_out(
    search: MemorySearch, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = [(h.id, h.score) for h in search.search("relay queue", limit=5, mode="vector")]
    inner = search.vectors.search

    def with_a_ghost(*args: Any, **kwargs: Any) -> list[tuple[int, float]]:
        return [(999_999, 1.0), *inner(*args, **kwargs)]  # no such document

    monkeypatch.setattr(search.vectors, "search", with_a_ghost)
    assert [(h.id, h.score) for h in search.search("relay queue", limit=5, mode="vector")] == (
        expected
    )
    hybrid = search.search("relay queue", limit=5)
    assert len(hybrid) == 5 and all(h.id.endswith(".md") for h in hybrid)
