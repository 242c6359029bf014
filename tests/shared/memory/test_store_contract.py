"""The graph-store contract: what every backend (SQLite, Neo4j over Bolt) must do."""

from __future__ import annotations

import pytest

from pai_core.memory.graph.model import Conflict, Entity, Fact, PredicateDef, Probe
from pai_core.memory.graph.sqlite_store import SqliteGraphStore


def _entity(i: str, name: str) -> Entity:
    return Entity(id=i, name=name, key=name.lower(), type="thing", created_at=1.0)


def _fact(
    i: str,
    s: str,
    o: str | None,
    *,
    vf: float = 10,
    vt: float | None = None,
    rec: float = 10,
    pred: str = "USES",
    value: str | None = None,
) -> Fact:
    return Fact(
        id=i,
        subject_id=s,
        predicate=pred,
        object_id=o,
        value=value,
        valid_from=vf,
        valid_to=vt,
        recorded_at=rec,
    )


def test_entities_keys_aliases_and_merge(store: SqliteGraphStore) -> None:
    with store.write() as tx:
        tx.insert_entity(_entity("e1", "Alpha"))
        tx.insert_entity(_entity("e2", "Beta"))
        tx.add_alias("al", "Al", "e1")
    with store.read() as tx:
        assert tx.entity_by_key("alpha").id == "e1"  # type: ignore[union-attr]
        assert tx.entity_by_key("al").id == "e1"  # type: ignore[union-attr]
        assert tx.entity_by_key("nobody") is None
        assert tx.aliases("e1") == ["Al"]
    with store.write() as tx:
        tx.insert_fact(_fact("f1", "e2", "e1"))
        assert tx.repoint("e2", "e1") == 1
        tx.mark_merged("e2", "e1")
    with store.read() as tx:
        assert tx.entity_by_key("beta").id == "e1"  # type: ignore[union-attr]
        assert tx.count_entities() == 1
        assert [n for _, n in tx.entity_names()] == ["Alpha"]


def test_fact_filters_are_bitemporal(store: SqliteGraphStore) -> None:
    with store.write() as tx:
        for e in ("a", "b", "c"):
            tx.insert_entity(_entity(e, e.upper()))
        tx.insert_fact(_fact("old", "a", "b", vf=0, vt=50, rec=1))
        tx.insert_fact(_fact("new", "a", "c", vf=50, rec=60))
        tx.insert_fact(_fact("lit", "a", None, pred="HAS_VERSION", value="1.2", vf=0, rec=5))
        tx.retract_fact("lit", 70, "wrong")
    with store.read() as tx:
        ids = lambda **kw: [f.id for f in tx.facts(**kw)]  # noqa: E731
        assert ids(subject_id="a") == ["old", "new"]  # retracted hidden by default
        assert ids(subject_id="a", include_retracted=True) == ["old", "lit", "new"]
        assert ids(subject_id="a", valid_at=20) == ["old"]
        assert ids(subject_id="a", valid_at=55) == ["new"]
        assert ids(subject_id="a", known_at=65) == ["old", "lit", "new"]  # lit not yet retracted
        assert ids(subject_id="a", known_at=30) == ["old", "lit"]  # new not yet recorded
        assert ids(entity_id="c") == ["new"]
        assert ids(predicates=["HAS_VERSION"], include_retracted=True) == ["lit"]
        assert ids(value="1.2", include_retracted=True) == ["lit"]
        assert ids(subject_id="a", limit=1, offset=1) == ["new"]
        assert [f.id for f in tx.timeline(55, 100, 10)] == ["lit", "new"]  # by recorded_at


def test_close_and_retract_keep_the_row(store: SqliteGraphStore) -> None:
    with store.write() as tx:
        tx.insert_entity(_entity("a", "A"))
        tx.insert_entity(_entity("b", "B"))
        tx.insert_fact(_fact("f", "a", "b"))
        tx.close_fact("f", 20, "g")
    with store.read() as tx:
        f = tx.fact("f")
        assert f is not None and f.valid_to == 20 and f.superseded_by == "g"
        assert tx.count_facts() == 1


def test_a_failed_write_transaction_leaves_nothing(store: SqliteGraphStore) -> None:
    with pytest.raises(RuntimeError), store.write() as tx:
        tx.insert_entity(_entity("a", "A"))
        raise RuntimeError("boom")
    with store.read() as tx:
        assert tx.entity("a") is None


def test_predicates_and_aliases(store: SqliteGraphStore) -> None:
    with store.write() as tx:
        tx.upsert_predicate(PredicateDef("RUNS_ON", "one", None, "", ("HOSTED_ON",)))
        tx.upsert_predicate(PredicateDef("RUNS_ON", "one", None, "", ("DEPLOYED_ON",)))
    with store.read() as tx:
        assert tx.predicate_for_alias("DEPLOYED_ON") == "RUNS_ON"
        assert tx.predicate_for_alias("HOSTED_ON") is None  # replaced, not accumulated
        assert tx.predicate("RUNS_ON").cardinality == "one"  # type: ignore[union-attr]


def test_conflicts(store: SqliteGraphStore) -> None:
    with store.write() as tx:
        tx.insert_conflict(Conflict("c1", "f2", "f1", "cardinality-one", "open", 5.0))
        tx.insert_conflict(Conflict("c2", "f3", "f1", "mutual-exclusion", "open", 6.0))
        tx.resolve_conflict("c1", 7.0, "kept new")
    with store.read() as tx:
        assert [c.id for c in tx.conflicts("open", 10, 0)] == ["c2"]
        c1 = tx.conflict("c1")
        assert c1 is not None and c1.status == "resolved" and c1.resolution == "kept new"
        assert len(tx.conflicts(None, 10, 0)) == 2


def test_bulk_reads_resolve_as_the_single_ones(store: SqliteGraphStore) -> None:
    with store.write() as tx:
        tx.insert_entities([_entity("e1", "Alpha"), _entity("e2", "Beta"), _entity("e3", "Gamma")])
        tx.add_alias("al", "Al", "e1")
        tx.mark_merged("e3", "e2")
        tx.upsert_predicate(PredicateDef("RUNS_ON", "one", None, "", ("HOSTED_ON",)))
        tx.set_entity_types([("e1", "service")])
    with store.read() as tx:
        found = tx.entities_by_keys(["alpha", "al", "gamma", "nobody", "alpha"])
        assert {k: e.id for k, e in found.items()} == {"alpha": "e1", "al": "e1", "gamma": "e2"}
        assert found["alpha"].type == "service"
        resolved = tx.resolve_predicates(["HOSTED_ON", "RUNS_ON", "NEVER_DEFINED"])
        assert resolved["HOSTED_ON"][0] == "RUNS_ON" and resolved["RUNS_ON"][0] is None
        assert resolved["HOSTED_ON"][1] == resolved["RUNS_ON"][1] == tx.predicate("RUNS_ON")
        assert resolved["NEVER_DEFINED"] == (None, None)


def test_current_facts_by_probe(store: SqliteGraphStore) -> None:
    with store.write() as tx:
        tx.insert_entities([_entity(e, e.upper()) for e in ("a", "b", "c")])
        tx.insert_facts(
            [
                _fact("f1", "a", "b"),
                _fact("f2", "a", "c"),
                _fact("f3", "a", None, pred="HAS_VERSION", value="1.0"),
                _fact("f4", "a", "b", pred="RUNS_ON"),
                _fact("f5", "a", "c", pred="RUNS_ON"),
            ]
        )
        tx.retract_fact("f5", 20, "")
    with store.read() as tx:

        def ids(*probes: Probe) -> list[str]:
            facts, objects = tx.current_facts(list(probes))
            assert {f.object_id for f in facts if f.object_id} == set(objects)
            return sorted(f.id for f in facts)

        assert ids(Probe("a", "USES", False, "b")) == ["f1"]
        assert ids(Probe("a", "USES", True)) == ["f1", "f2"]
        assert ids(Probe("a", "HAS_VERSION", False, None, "1.0")) == ["f3"]
        assert ids(Probe("a", "HAS_VERSION", False, None, "2.0")) == []
        assert ids(Probe("a", "RUNS_ON", True)) == ["f4"]  # retracted left out
        assert ids(Probe("a", "USES", True), Probe("a", "USES", False, "c")) == ["f1", "f2"]
        _, objects = tx.current_facts([Probe("a", "USES", False, "c")])
        assert objects["c"].name == "C"


def test_bulk_writes_keep_their_order(store: SqliteGraphStore) -> None:
    with store.write() as tx:
        tx.insert_entities([_entity("a", "A"), _entity("b", "B")])
        tx.insert_fact(_fact("first", "a", "b"))
        tx.insert_facts([_fact(f"f{i}", "a", "b", vf=i) for i in (3, 1, 2)])
        tx.close_facts([("f1", 50, "f2"), ("f3", 60, None)])
        tx.insert_conflicts(
            [Conflict(f"c{i}", "f2", "f1", "cardinality-one", "open", float(i)) for i in (1, 2)]
        )
    with store.read() as tx:
        assert [f.id for _, f in tx.facts_after(0, 10)] == ["first", "f3", "f1", "f2"]
        assert (tx.fact("f1").valid_to, tx.fact("f1").superseded_by) == (50, "f2")  # type: ignore[union-attr]
        assert (tx.fact("f3").valid_to, tx.fact("f3").superseded_by) == (60, None)  # type: ignore[union-attr]
        assert [c.id for c in tx.conflicts("open", 10, 0)] == ["c1", "c2"]
