"""The background indexer: facts any process writes reach full text without a search writing,
documents get their vectors a batch at a time, and a failing pass is retried."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from pai_core.memory.episodes.ingest import EpisodeStore
from pai_core.memory.fulltext import SearchIndex
from pai_core.memory.graph.service import GraphService
from pai_core.memory.graph.sqlite_store import SqliteGraphStore
from pai_core.memory.graph.views import FactIn
from pai_membrane.search.indexer import Indexer, SearchActivity
from pai_membrane.search.service import MemorySearch


def _until(check, timeout: float = 20.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return False


def test_facts_written_elsewhere_are_indexed_in_the_background(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    index = SearchIndex(db)
    search = MemorySearch(index, GraphService(SqliteGraphStore(db)), EpisodeStore(index))
    other = GraphService(SqliteGraphStore(db))  # another server writing the same memory
    indexer = Indexer(search.sync_facts, search.embed_pending, interval_s=0.05)
    try:
        indexer.start()
        other.remember(FactIn(subject="www.example.com", predicate="HAS_A", value="192.0.2.7"))
        assert _until(lambda: search.search("192.0.2.7", kinds=["facts"]) != [])
        assert not search.unindexed_facts()
        assert indexer.state == "running"
    finally:
        indexer.stop()
    assert indexer.state == "stopped"


def test_embedding_goes_a_batch_at_a_time_and_a_kick_syncs_facts_first() -> None:
    calls: list[str] = []
    remaining = {"docs": 200}
    lock = threading.Lock()

    def sync() -> int:
        with lock:
            calls.append("sync")
        return 0

    def embed(n: int) -> int:
        with lock:
            done = min(n, remaining["docs"])
            remaining["docs"] -= done
            calls.append(f"embed {done}")
        return done

    indexer = Indexer(sync, embed, interval_s=30)
    try:
        indexer.kick()
        assert _until(lambda: remaining["docs"] == 0 and "embed 0" in calls)
        with lock:
            steps = ["embed 16"] * 12 + ["embed 8"]
            assert calls[:14] == ["sync", *steps]
            calls.clear()
        indexer.kick()  # a write: wakes it long before the interval
        assert _until(lambda: "sync" in calls, timeout=5)
    finally:
        indexer.stop()


def test_a_failing_pass_is_reported_and_retried() -> None:
    attempts = {"n": 0}

    def sync() -> int:
        attempts["n"] += 1
        if attempts["n"] == 1:
            raise RuntimeError("database is locked")
        return 0

    indexer = Indexer(sync, lambda n: 0, interval_s=0.05)
    try:
        indexer.start()
        assert _until(lambda: attempts["n"] >= 3)
        assert _until(lambda: indexer.last_error is None)
    finally:
        indexer.stop()


def test_embedding_waits_while_a_search_runs() -> None:
    """A batch starts only once no search is running (and none just started)."""
    activity = SearchActivity()
    started = threading.Event()
    release = threading.Event()
    embedded: list[int] = []

    def searching() -> None:
        with activity.running():
            started.set()
            release.wait(10)

    search = threading.Thread(target=searching)
    search.start()
    assert started.wait(5)
    indexer = Indexer(lambda: 0, lambda n: embedded.append(n) or 0, activity=activity)
    try:
        indexer.kick()
        assert not _until(lambda: bool(embedded), timeout=0.3)  # the search still runs
        release.set()
        search.join(5)
        assert _until(lambda: bool(embedded), timeout=5)
        assert indexer.yielded_s > 0
    finally:
        release.set()
        indexer.stop()


def test_a_steady_stream_of_searches_does_not_starve_embedding() -> None:
    activity = SearchActivity()
    with activity.running():  # a search that never ends
        waited = activity.wait_quiet(quiet_s=0.01, max_wait_s=0.2)
    assert 0.2 <= waited < 5
    assert activity.wait_quiet(quiet_s=0.0, max_wait_s=5) < 1  # nothing running: no wait
