"""The fact graph's rules, one by one: idempotence, conflicts and policies, time, entities."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pai_core.errors import Conflict, InvalidInput, NotFound
from pai_core.memory.graph.service import GraphService
from pai_core.memory.timeparse import iso
from tests.shared.memory.conftest import Clock
from tests.shared.memory.facts import fact_in, facts_in

RUNS = {"subject": "MemBrane", "predicate": "RUNS_ON", "object": "inference01"}


def test_identical_current_fact_is_idempotent(graph: GraphService, clock: Clock) -> None:
    first = graph.remember(fact_in(RUNS))
    clock.advance(60)
    again = graph.remember(fact_in({**RUNS, "subject": "membrane"}))
    assert first.status == "written" and again.status == "unchanged"
    assert again.fact and first.fact and again.fact.id == first.fact.id
    assert graph.stats()["facts"] == 1


def test_cardinality_one_supersedes_by_default(graph: GraphService, clock: Clock) -> None:
    old = graph.remember(fact_in(RUNS))
    t = clock.advance(3600)
    new = graph.remember(fact_in({**RUNS, "object": "inference02"}))
    assert new.status == "written"
    [c] = new.conflicts
    assert (c.rule, c.action) == ("cardinality-one", "superseded-existing")
    assert c.existing.id == old.fact.id and c.existing.valid_to == iso(t)  # type: ignore[union-attr]
    now = graph.get_entity("MemBrane")
    assert [f.object for f in now.outgoing] == ["inference02"]
    hist = graph.get_entity("MemBrane", include_history=True)
    assert sorted(f.object or "" for f in hist.outgoing) == ["inference01", "inference02"]
    before = graph.get_entity("MemBrane", as_of=iso(t - 10))
    assert [f.object for f in before.outgoing] == ["inference01"]


def test_predicate_alias_resolves_before_the_check(graph: GraphService, clock: Clock) -> None:
    graph.remember(fact_in(RUNS))
    clock.advance(10)
    res = graph.remember(
        fact_in({"subject": "MEMBRANE", "predicate": "hosted on", "object": "gpu02"})
    )
    assert res.fact and res.fact.predicate == "RUNS_ON"
    assert res.conflicts[0].rule == "cardinality-one"


def test_reject_policy_writes_nothing(graph: GraphService, clock: Clock) -> None:
    graph.remember(fact_in(RUNS))
    clock.advance(10)
    res = graph.remember(fact_in({**RUNS, "object": "inference02"}), policy="reject")
    assert res.status == "rejected" and res.fact is None
    assert res.conflicts[0].action == "rejected"
    assert graph.stats() == {"facts": 1, "entities": 2}  # not even the new object entity
    assert [f.object for f in graph.get_entity("MemBrane").outgoing] == ["inference01"]


def test_flag_policy_keeps_both_and_opens_a_conflict(graph: GraphService, clock: Clock) -> None:
    old = graph.remember(fact_in(RUNS))
    clock.advance(10)
    new = graph.remember(fact_in({**RUNS, "object": "inference02"}), policy="flag")
    [c] = new.conflicts
    assert c.action == "flagged" and c.conflict_id
    assert len(graph.get_entity("MemBrane").outgoing) == 2
    [open_] = graph.list_conflicts()
    assert open_.existing and open_.existing.id == old.fact.id  # type: ignore[union-attr]
    resolved = graph.resolve_conflict(c.conflict_id, keep="new", note="moved")
    assert resolved.status == "resolved" and "moved" in resolved.resolution
    assert [f.object for f in graph.get_entity("MemBrane").outgoing] == ["inference02"]
    assert graph.list_conflicts() == []
    with pytest.raises(Conflict):
        graph.resolve_conflict(c.conflict_id, keep="new")


def test_resolve_keeping_existing_retracts_the_new(graph: GraphService, clock: Clock) -> None:
    graph.remember(fact_in(RUNS))
    clock.advance(10)
    c = graph.remember(fact_in({**RUNS, "object": "x"}), policy="flag").conflicts[0]
    graph.resolve_conflict(c.conflict_id or "", keep="existing")
    assert [f.object for f in graph.get_entity("MemBrane").outgoing] == ["inference01"]
    with pytest.raises(NotFound):
        graph.resolve_conflict("c-nope", keep="new")


def test_many_valued_predicates_do_not_conflict(graph: GraphService) -> None:
    graph.remember(fact_in({"subject": "MemBrane", "predicate": "USES", "object": "SQLite"}))
    res = graph.remember(fact_in({"subject": "MemBrane", "predicate": "USES", "object": "numpy"}))
    assert res.conflicts == [] and len(graph.get_entity("MemBrane").outgoing) == 2


def test_unknown_predicates_are_many_and_normalised(graph: GraphService) -> None:
    graph.remember(fact_in({"subject": "A", "predicate": "talksTo", "object": "B"}))
    res = graph.remember(fact_in({"subject": "A", "predicate": "talks to", "object": "C"}))
    assert res.fact and res.fact.predicate == "TALKS_TO" and res.conflicts == []


def test_non_overlapping_intervals_do_not_conflict(graph: GraphService) -> None:
    graph.remember(fact_in({**RUNS, "valid_from": "2026-01-01", "valid_to": "2026-02-01"}))
    res = graph.remember(
        fact_in({**RUNS, "object": "gpu09", "valid_from": "2026-03-01", "valid_to": "2026-04-01"})
    )
    assert res.status == "written" and res.conflicts == []
    feb = graph.get_entity("MemBrane", as_of="2026-01-15")
    mar = graph.get_entity("MemBrane", as_of="2026-03-15")
    assert [f.object for f in feb.outgoing] == ["inference01"]
    assert [f.object for f in mar.outgoing] == ["gpu09"]
    assert graph.get_entity("MemBrane", as_of="2026-02-15").outgoing == []


def test_backfilled_older_fact_is_bounded_not_superseding(graph: GraphService) -> None:
    graph.remember(fact_in({**RUNS, "valid_from": "2026-04-01"}))
    res = graph.remember(fact_in({**RUNS, "object": "oldbox", "valid_from": "2026-01-01"}))
    [c] = res.conflicts
    assert c.action == "bounded-new"
    assert res.fact and res.fact.valid_to == "2026-04-01T00:00:00.000Z"
    assert [f.object for f in graph.get_entity("MemBrane", as_of="2026-03-01").outgoing] == [
        "oldbox"
    ]
    assert [f.object for f in graph.get_entity("MemBrane").outgoing] == ["inference01"]


def test_mutual_exclusion(graph: GraphService, clock: Clock) -> None:
    graph.remember(fact_in({"subject": "fw", "predicate": "ENABLED", "object": "ssh"}))
    clock.advance(5)
    res = graph.remember(fact_in({"subject": "fw", "predicate": "DISABLED", "object": "ssh"}))
    [c] = res.conflicts
    assert c.rule == "mutual-exclusion" and c.action == "superseded-existing"
    other = graph.remember(fact_in({"subject": "fw", "predicate": "DISABLED", "object": "telnet"}))
    assert other.conflicts == []


def test_defined_exclusions_are_symmetric(graph: GraphService, clock: Clock) -> None:
    graph.define_predicate("ALLOWS", exclusive_with=["DENIES"])
    graph.remember(fact_in({"subject": "policy", "predicate": "DENIES", "object": "guest"}))
    clock.advance(1)
    res = graph.remember(
        fact_in({"subject": "policy", "predicate": "ALLOWS", "object": "guest"}), policy="reject"
    )
    assert res.status == "rejected"
    preds = {p.name: p for p in graph.list_predicates()}
    assert "ALLOWS" in preds["DENIES"].exclusive_with


@pytest.mark.parametrize("field", ["exclusive_with", "aliases"])
def test_define_predicate_caps_exclusions_and_aliases(graph: GraphService, field: str) -> None:
    before = len(graph.list_predicates())
    names = [f"P{i}" for i in range(2000)]
    with pytest.raises(InvalidInput, match=f"{field} has 2000 names; a predicate has at most 32"):
        graph.define_predicate("GUARDS", **{field: names})  # type: ignore[arg-type]
    assert len(graph.list_predicates()) == before  # nothing was created
    made = graph.define_predicate("GUARDS", **{field: names[:32]})  # type: ignore[arg-type]
    assert len(getattr(made, field)) == 32


def test_define_predicate_cardinality_and_aliases(graph: GraphService, clock: Clock) -> None:
    graph.define_predicate("scheduled on", "one", aliases=["planned for"])
    graph.remember(
        fact_in({"subject": "release", "predicate": "SCHEDULED_ON", "value": "2026-12-01"})
    )
    clock.advance(1)
    res = graph.remember(
        fact_in({"subject": "release", "predicate": "planned for", "value": "2026-12-08"})
    )
    assert res.fact and res.fact.predicate == "SCHEDULED_ON"
    assert res.conflicts[0].rule == "cardinality-one"
    with pytest.raises(Conflict):
        graph.define_predicate("OTHER", aliases=["PLANNED_FOR"])


def test_aliases_and_merge(graph: GraphService, clock: Clock) -> None:
    graph.remember(fact_in(RUNS))
    graph.remember(fact_in({"subject": "Mem Brane", "predicate": "USES", "object": "SQLite"}))
    with pytest.raises(Conflict, match="merge_entities"):
        graph.add_alias("MemBrane", "mem brane")
    clock.advance(1)
    merged = graph.merge_entities("Mem Brane", "MemBrane")
    assert merged.facts_moved == 1
    view = graph.get_entity("mem  brane")  # the old name finds the target now
    assert view.name == "MemBrane" and "Mem Brane" in view.aliases
    assert {f.predicate for f in view.outgoing} == {"RUNS_ON", "USES"}
    graph.add_alias("MemBrane", "MB")
    assert graph.get_entity("mb").name == "MemBrane"
    with pytest.raises(InvalidInput, match="itself"):
        graph.merge_entities("MemBrane", "mb")


def test_merge_retracts_duplicates(graph: GraphService, clock: Clock) -> None:
    graph.remember(fact_in({"subject": "api", "predicate": "USES", "object": "redis"}))
    graph.remember(fact_in({"subject": "api-svc", "predicate": "USES", "object": "redis"}))
    clock.advance(1)
    res = graph.merge_entities("api-svc", "api")
    assert res.duplicates_retracted == 1
    assert len(graph.get_entity("api").outgoing) == 1


def test_retract_keeps_history(graph: GraphService, clock: Clock) -> None:
    fact = graph.remember(fact_in(RUNS)).fact
    assert fact
    clock.advance(1)
    gone = graph.retract(fact.id, "was a typo")
    assert gone.retracted_at and not gone.current and gone.note == "was a typo"
    assert graph.get_entity("MemBrane").outgoing == []
    hist = graph.query(subject="MemBrane", include_history=True).facts
    assert [f.id for f in hist] == [fact.id]
    known_before = graph.query(subject="MemBrane", known_at=iso(clock.now - 0.5))
    assert [f.id for f in known_before.facts] == [fact.id]
    with pytest.raises(NotFound):
        graph.retract("f-unknown")


def test_query_and_pagination(graph: GraphService) -> None:
    graph.remember_many(
        facts_in([{"subject": "svc", "predicate": "USES", "object": f"lib{i}"} for i in range(7)])
    )
    page = graph.query(subject="svc", limit=5)
    assert len(page.facts) == 5 and page.next_offset == 5
    rest = graph.query(subject="svc", limit=5, offset=5)
    assert len(rest.facts) == 2 and rest.next_offset is None
    assert len(graph.query(object="lib3").facts) == 1
    with pytest.raises(InvalidInput):
        graph.query()


def test_traverse(graph: GraphService) -> None:
    graph.remember_many(
        facts_in(
            [
                {"subject": "MemBrane", "predicate": "RUNS_ON", "object": "inference01"},
                {"subject": "inference01", "predicate": "LOCATED_IN", "object": "rack3"},
                {"subject": "rack3", "predicate": "PART_OF", "object": "dc-east"},
                {"subject": "MemBrane", "predicate": "USES", "object": "SQLite"},
            ]
        )
    )
    two = graph.traverse("MemBrane", depth=2)
    names = {n["name"]: n["depth"] for n in two.nodes}
    assert names == {"MemBrane": 0, "inference01": 1, "SQLite": 1, "rack3": 2}
    only = graph.traverse("MemBrane", depth=3, predicates=["hosted on", "LOCATED_IN"])
    assert {n["name"] for n in only.nodes} == {"MemBrane", "inference01", "rack3"}


def test_timeline_groups_by_project(graph: GraphService, clock: Clock) -> None:
    graph.remember(
        fact_in({"subject": "PAI", "subject_type": "project", "predicate": "USES", "object": "MCP"})
    )
    graph.remember(fact_in({"subject": "dns server", "predicate": "PART_OF", "object": "PAI"}))
    clock.advance(7 * 86400)
    graph.remember(fact_in({"subject": "dns server", "predicate": "HAS_STATUS", "value": "done"}))
    graph.remember(fact_in({"subject": "garden", "predicate": "HAS_STATUS", "value": "watered"}))
    recent = graph.timeline(since=iso(clock.now - 3600) or "")
    groups = {g.group: g for g in recent.groups}
    assert set(groups) == {"PAI", "garden"}
    assert any("HAS_STATUS done" in e["fact"] for e in groups["PAI"].events)  # type: ignore[operator]
    everything = graph.timeline(since=iso(clock.now - 30 * 86400) or "")
    assert everything.total_events >= 4
    with pytest.raises(InvalidInput):
        graph.timeline(since="tomorrow", until="yesterday")


@pytest.mark.parametrize(
    ("item", "field"),
    [
        ({"subject": "", "predicate": "USES", "object": "x"}, "subject"),
        ({"subject": "a" * 201, "predicate": "USES", "object": "x"}, "subject"),
        ({"subject": "a\x00b", "predicate": "USES", "object": "x"}, "subject"),
        ({"subject": "a", "predicate": "uses!", "object": "x"}, "predicate"),
        ({"subject": "a", "predicate": "USES"}, "object"),
        ({"subject": "a", "predicate": "USES", "object": "x", "value": "y"}, "object"),
        ({"subject": "a", "predicate": "USES", "object": "a"}, "object"),
        (
            {"subject": "a", "predicate": "USES", "object": "x", "valid_from": "soonish"},
            "valid_from",
        ),
        (
            {
                "subject": "a",
                "predicate": "USES",
                "object": "x",
                "valid_from": "2026-02-01",
                "valid_to": "2026-01-01",
            },
            "valid_to",
        ),
        ({"subject": "a", "predicate": "USES", "object": "x", "confidence": 2}, "confidence"),
    ],
)
def test_bad_input_names_the_field_and_writes_nothing(
    graph: GraphService, item: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidInput) as info:
        graph.remember(fact_in(item))
    assert info.value.details["field"] == field
    assert graph.stats() == {"facts": 0, "entities": 0}


def test_batch_is_all_or_nothing(graph: GraphService, clock: Clock) -> None:
    graph.remember(fact_in(RUNS))
    clock.advance(1)
    batch = [
        {"subject": "A", "predicate": "USES", "object": "B"},
        {**RUNS, "object": "elsewhere"},
    ]
    res = graph.remember_many(facts_in(batch), policy="reject")
    assert res.status == "rejected" and res.written == 0
    assert [r.status for r in res.results] == ["rejected", "rejected"]
    assert graph.stats()["facts"] == 1
    with pytest.raises(InvalidInput):
        graph.remember_many(
            facts_in(
                [
                    {"subject": "C", "predicate": "USES", "object": "D"},
                    {"subject": "", "predicate": "USES", "object": "D"},
                ]
            )
        )
    assert graph.stats()["facts"] == 1  # the valid first item was rolled back too


@settings(
    max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None
)
@given(objects=st.lists(st.sampled_from(["h1", "h2", "h3"]), min_size=1, max_size=8))
def test_cardinality_one_leaves_exactly_one_current_fact(
    graph: GraphService, clock: Clock, objects: list[str]
) -> None:
    subject = f"svc-{clock.now}"
    for obj in objects:
        clock.advance(1)
        graph.remember(fact_in({"subject": subject, "predicate": "RUNS_ON", "object": obj}))
    current = graph.get_entity(subject).outgoing
    assert [f.object for f in current] == [objects[-1]]
    history = graph.get_entity(subject, include_history=True).outgoing
    # consecutive duplicates are idempotent; every change is one more fact in history
    changes = 1 + sum(1 for a, b in zip(objects, objects[1:], strict=False) if a != b)
    assert len(history) == changes
