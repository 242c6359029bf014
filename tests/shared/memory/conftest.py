"""Graph fixtures: a store per test, over every backend the contract suite knows.

``sqlite`` always; ``arcadedb`` (a real Bolt server started once per session from the
``arcadedb-embedded`` package) when it is installed and starts; ``neo4j`` when
PAI_TEST_NEO4J_URI names a live server. A backend that cannot run skips with its reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pai_core.memory.graph.service import GraphService
from pai_core.memory.graph.sqlite_store import SqliteGraphStore
from pai_core.memory.graph.store import GraphStore
from tests.shared.memory.boltservers import BoltServer, neo4j_from_env, start_arcadedb

if TYPE_CHECKING:
    from pai_core.memory.graph.neo4j_store import Neo4jGraphStore

BACKENDS = ["sqlite", "arcadedb", "neo4j"]


@pytest.fixture(scope="session")
def arcadedb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BoltServer]:
    try:
        server = start_arcadedb(tmp_path_factory.mktemp("arcadedb"))
    except RuntimeError as exc:
        pytest.skip(f"ArcadeDB (Bolt) could not start, graph contract not run on it: {exc}")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def neo4j_server() -> Iterator[BoltServer]:
    server = neo4j_from_env()
    if server is None:
        pytest.skip("no Neo4j server here: set PAI_TEST_NEO4J_URI to run the graph contract on it")
    yield server
    server.stop()


def bolt_store(server: BoltServer) -> Neo4jGraphStore:
    from pai_core.memory.graph.neo4j_store import Neo4jGraphStore

    return Neo4jGraphStore(
        server.uri, user=server.user, password=server.password, database=server.database
    )


@pytest.fixture(scope="session")
def bolt_stores() -> Iterator[dict[str, Neo4jGraphStore]]:
    """One store (driver, pool, schema) per Bolt server for the session; tests wipe the data."""
    stores: dict[str, Neo4jGraphStore] = {}
    yield stores
    for s in stores.values():
        s.close()


@pytest.fixture(params=BACKENDS)
def store(
    request: pytest.FixtureRequest, tmp_path: Path, bolt_stores: dict[str, Neo4jGraphStore]
) -> Iterator[GraphStore]:
    if request.param == "sqlite":
        s = SqliteGraphStore(tmp_path / "membrane.db")
        yield s
        s.close()
        return
    server: BoltServer = request.getfixturevalue(f"{request.param}_server")
    server.wipe()
    if request.param not in bolt_stores:
        bolt_stores[request.param] = bolt_store(server)
    yield bolt_stores[request.param]


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
def graph(store: GraphStore, clock: Clock) -> GraphService:
    return GraphService(store, clock=clock)
