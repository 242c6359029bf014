"""A whole graph moves SQLite → Neo4j (ArcadeDB over Bolt) → SQLite without loss."""

from __future__ import annotations

from pathlib import Path

import pytest

from pai_core.errors import Conflict
from pai_core.memory.graph.migrate import dump_graph, migrate_graph
from pai_core.memory.graph.service import GraphService
from pai_core.memory.graph.sqlite_store import SqliteGraphStore
from tests.shared.memory.boltservers import BoltServer
from tests.shared.memory.conftest import Clock, bolt_store
from tests.shared.memory.facts import fact_in


def _rich_graph(graph: GraphService, clock: Clock) -> None:
    graph.define_predicate("HOSTED_BY", cardinality="one", aliases=["LIVES_ON"])
    graph.remember(fact_in({"subject": "MemBrane", "predicate": "RUNS_ON", "object": "inf01"}))
    clock.advance(60)
    graph.remember(fact_in({"subject": "MemBrane", "predicate": "RUNS_ON", "object": "inf02"}))
    clock.advance(60)
    graph.remember(
        fact_in({"subject": "MemBrane", "predicate": "RUNS_ON", "object": "inf03"}), policy="flag"
    )
    wrong = graph.remember(fact_in({"subject": "O'Brien `x`", "predicate": "USES", "value": "1"}))
    graph.retract(wrong.fact.id if wrong.fact else "", reason="typo")
    graph.remember(fact_in({"subject": "PAI", "predicate": "LIVES_ON", "object": "inf01"}))
    graph.add_alias("PAI", "Personal AI")
    graph.remember(fact_in({"subject": "pai-old", "predicate": "USES", "object": "inf02"}))
    graph.merge_entities("pai-old", "PAI")


def test_sqlite_to_bolt_and_back_loses_nothing(
    tmp_path: Path, arcadedb_server: BoltServer, clock: Clock
) -> None:
    source = SqliteGraphStore(tmp_path / "a.db")
    graph = GraphService(source, clock=clock)
    _rich_graph(graph, clock)
    arcadedb_server.wipe()
    bolt = bolt_store(arcadedb_server)
    back = SqliteGraphStore(tmp_path / "b.db")
    try:
        there = migrate_graph(source, bolt)
        again = migrate_graph(bolt, back)
        assert there.checksums == again.checksums
        with source.read() as tx:
            assert there.counts["facts"] == tx.count_facts() >= 6
        assert there.counts["conflicts"] == 1 and there.counts == again.counts
        assert there.counts["entities"] >= 6  # the merged one included
        moved = GraphService(back, clock=clock)
        for name in ("MemBrane", "PAI", "Personal AI", "pai-old", "O'Brien `x`"):
            want = graph.get_entity(name, include_history=True).model_dump()
            assert moved.get_entity(name, include_history=True).model_dump() == want
        assert moved.facts_since(0) == graph.facts_since(0)  # same commit order and cursor
        assert moved.list_conflicts() == graph.list_conflicts()
        over_bolt = GraphService(bolt, clock=clock)
        assert (
            over_bolt.get_entity("pai-old").model_dump() == graph.get_entity("pai-old").model_dump()
        )
        with pytest.raises(Conflict, match="not empty"):
            migrate_graph(source, back)
        assert dump_graph(back).counts() == there.counts  # the refused copy changed nothing
    finally:
        bolt.close()
        source.close()
        back.close()
