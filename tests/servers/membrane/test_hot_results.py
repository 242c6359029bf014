"""Hot search results in a real Redis: shared by processes, invalidated by a write in any of
them, and Redis stopped mid-run (by PID) makes calls fail explicitly, then work again."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pai_core.errors import BackendUnavailable
from pai_core.memory.graph.sqlite_store import SqliteGraphStore
from pai_core.settings import MemorySettings
from pai_membrane.memory import MembraneMemory
from pai_membrane.search.redis_cache import CachedSearch
from pai_membrane.settings import MembraneSettings
from tests.conftest import free_port, require_binary, stop_process, wait_for_port
from tests.shared.memory.facts import fact_in


@dataclass
class Redis:
    directory: Path
    port: int
    password: str
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = require_binary("redis-server", package="redis-server")
        cmd = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
               str(self.directory), "--save", "", "--appendonly", "no",
               "--requirepass", self.password]  # fmt: skip
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, self.proc)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[Redis]:
    server = Redis(tmp_path, free_port(), secrets.token_hex(12))
    server.start()
    yield server
    server.stop()


def _memory(tmp_path: Path, redis: Redis) -> MembraneMemory:
    settings = MemorySettings(
        db_path=tmp_path / "m.db", vault_path=tmp_path / "vault", redis_url=redis.url
    )
    return MembraneMemory(MembraneSettings(embeddings=False, watch_vault=False, memory=settings))


def _facts(tmp_path: Path) -> int:
    store = SqliteGraphStore(tmp_path / "m.db")
    try:
        with store.read() as tx:
            return tx.count_facts()
    finally:
        store.close()


_OTHER_PROCESS = """
import sys
from pai_core.memory import open_memory
from pai_core.memory.graph.service import FactIn
from pai_core.settings import MemorySettings

memory = open_memory(MemorySettings(db_path=sys.argv[1], vault_path=sys.argv[2], redis_url=sys.argv[3]))
memory.graph.remember(FactIn(subject="MemBrane", predicate="RUNS_ON", object="inf09"))
memory.stop()
"""


def test_results_are_shared_and_a_write_in_another_process_invalidates_them(
    tmp_path: Path, redis: Redis
) -> None:
    a = _memory(tmp_path, redis)
    b = _memory(tmp_path, redis)  # a second server on the same memory
    try:
        a.graph.remember(
            fact_in({"subject": "MemBrane", "predicate": "RUNS_ON", "object": "inf01"})
        )
        a.after_write()
        search = a.search
        assert isinstance(search, CachedSearch)
        other = b.search
        for memory in (a, b):  # their background indexing writes too (and so invalidates)
            memory.indexer.stop()
        first = search.search("membrane runs on")
        assert [h.title for h in first] == ["MemBrane RUNS_ON inf01"]
        assert (search.cache.hits, search.cache.misses) == (0, 1)
        assert isinstance(other, CachedSearch)
        again = other.search("membrane runs on")  # answered from Redis
        assert again == first and other.cache.hits == 1
        subprocess.run(
            [sys.executable, "-c", _OTHER_PROCESS, str(tmp_path / "m.db"),
             str(tmp_path / "vault"), redis.url],
            check=True, env={**os.environ}, timeout=60,
        )  # fmt: skip
        other.sync_facts()  # what the indexer does in the background
        fresh = other.search("membrane runs on", include_history=True)
        assert "MemBrane RUNS_ON inf09" in [h.title for h in fresh]
        assert other.cache.misses == 1
    finally:
        a.stop()
        b.stop()


def test_redis_stopped_mid_run_fails_calls_explicitly_then_recovers(
    tmp_path: Path, redis: Redis
) -> None:
    memory = _memory(tmp_path, redis)
    try:
        memory.graph.remember(fact_in({"subject": "PAI", "predicate": "USES", "object": "redis"}))
        memory.after_write()
        assert memory.search.search("pai uses")
        redis.stop()
        with pytest.raises(BackendUnavailable) as info:
            memory.search.search("pai uses")
        message = str(info.value)
        assert f"redis at redis://127.0.0.1:{redis.port}" in message
        assert "PAI_MEMORY_REDIS_URL" in message and redis.password not in message
        with pytest.raises(BackendUnavailable, match="rolled back, nothing was changed"):
            memory.graph.remember(fact_in({"subject": "PAI", "predicate": "USES", "object": "x"}))
        assert _facts(tmp_path) == 1  # no partial write, no fallback
        redis.start()
        memory.graph.remember(fact_in({"subject": "PAI", "predicate": "USES", "object": "x"}))
        memory.after_write()
        assert _facts(tmp_path) == 2
        assert {h.title for h in memory.search.search("pai uses")} >= {"PAI USES x"}
    finally:
        memory.stop()
