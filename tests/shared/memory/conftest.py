"""Graph fixtures: a store per test, over every backend the contract suite knows."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pai_core.memory.graph.service import GraphService
from pai_core.memory.graph.sqlite_store import SqliteGraphStore

BACKENDS = ["sqlite"]


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqliteGraphStore]:
    if request.param == "sqlite":
        s = SqliteGraphStore(tmp_path / "membrane.db")
        yield s
        s.close()
    else:  # pragma: no cover - a second backend plugs in here
        if not os.environ.get("PAI_TEST_NEO4J_URI"):
            pytest.skip("no Neo4j server here: set PAI_TEST_NEO4J_URI to run the contract on it")


class Clock:
    """A controllable clock for temporal tests (epoch seconds)."""

    def __init__(self, start: float = 1_780_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def graph(store: SqliteGraphStore, clock: Clock) -> GraphService:
    return GraphService(store, clock=clock)
