"""A batch of facts decides each one as the same facts written one by one would: fact 3 of a
batch sees facts 1-2 (duplicates, supersedes, exclusions, flags), on every backend; and over
Bolt a batch costs a fixed number of round trips, however many facts it holds."""

from __future__ import annotations

import random
from typing import Any

import pytest

from pai_core.errors import NotFound
from pai_core.memory.graph.rules import Policy
from pai_core.memory.graph.service import GraphService
from pai_core.memory.timeparse import iso
from tests.shared.memory.boltservers import BoltServer
from tests.shared.memory.conftest import Clock, bolt_store
from tests.shared.memory.facts import fact_in, facts_in

START = 1_700_000_000.0


def _facts(prefix: str, seed: int, n: int = 40) -> list[dict[str, Any]]:
    """A mix that makes every rule fire: single-valued moves and repeats, backfills, literal
    versions, many-valued duplicates, and the ENABLED/DISABLED exclusion."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    for i in range(n):
        subject = f"{prefix}svc{rng.randrange(3)}"
        kind = rng.randrange(5)
        item: dict[str, Any] = {"subject": subject}
        if kind == 0:
            item.update(predicate="RUNS_ON", object=f"host{rng.randrange(3)}")
        elif kind == 1:
            item.update(predicate="HAS_VERSION", value=f"1.{rng.randrange(3)}")
        elif kind == 2:
            item.update(predicate="USES", object=f"lib{rng.randrange(3)}")
        else:
            item.update(predicate=rng.choice(["ENABLED", "DISABLED"]), object="feature")
        # mostly forward in time, sometimes a backfill before what is already there
        at = START + (i * 100 if rng.random() > 0.2 else rng.randrange(max(1, i)) * 100 - 50)
        item["valid_from"] = iso(at)
        out.append(item)
    return out


def _outcome(graph: GraphService, prefix: str, results: list[Any]) -> Any:
    decided = [
        (r.status, [(c.rule, c.action, c.existing.predicate) for c in r.conflicts]) for r in results
    ]
    history = {}
    for i in range(3):
        name = f"{prefix}svc{i}"
        try:
            view = graph.get_entity(name, include_history=True)
        except NotFound:  # a subject the draw never used
            continue
        history[i] = sorted(
            (f.predicate, f.object, f.value, f.valid_from, f.valid_to, f.current)
            for f in view.outgoing
        )
    return decided, history


@pytest.mark.parametrize("policy", ["supersede", "flag"])
def test_a_batch_decides_as_the_same_facts_one_by_one(
    graph: GraphService, clock: Clock, policy: Policy
) -> None:
    clock.now = START + 10_000
    seed = 1 if policy == "supersede" else 2
    batch = graph.remember_many(facts_in(_facts("b", seed)), policy)
    single = [graph.remember(fact_in(item), policy) for item in _facts("s", seed)]
    assert _outcome(graph, "b", batch.results) == _outcome(graph, "s", single)
    assert batch.written == sum(r.status == "written" for r in single)


def test_later_facts_of_a_batch_see_the_earlier_ones(graph: GraphService, clock: Clock) -> None:
    res = graph.remember_many(
        facts_in(
            [
                {"subject": "web", "predicate": "RUNS_ON", "object": "h1"},
                {"subject": "web", "predicate": "RUNS_ON", "object": "h1"},
                {"subject": "Web", "predicate": "HOSTED_ON", "object": "h2", "object_type": "host"},
                {"subject": "web", "predicate": "ENABLED", "object": "tls"},
                {"subject": "web", "predicate": "DISABLED", "object": "tls"},
            ]
        )
    )
    assert [r.status for r in res.results] == [
        "written",
        "unchanged",
        "written",
        "written",
        "written",
    ]
    assert res.results[1].fact.id == res.results[0].fact.id  # type: ignore[union-attr]
    [moved] = res.results[2].conflicts
    assert (moved.rule, moved.action) == ("cardinality-one", "superseded-existing")
    assert moved.existing.id == res.results[0].fact.id  # type: ignore[union-attr]
    [excl] = res.results[4].conflicts
    assert excl.rule == "mutual-exclusion"
    view = graph.get_entity("web")
    assert sorted((f.predicate, f.object) for f in view.outgoing) == [
        ("DISABLED", "tls"),
        ("RUNS_ON", "h2"),
    ]
    assert graph.get_entity("h2").type == "host"
    # cursors follow the order the batch wrote its facts in
    written = [r.fact.id for r in res.results if r.status == "written"]  # type: ignore[union-attr]
    views, _ = graph.facts_since(0)
    assert [v.id for v in views] == written


def test_a_batch_over_bolt_sends_as_many_queries_for_10_facts_as_for_200(
    arcadedb_server: BoltServer,
) -> None:
    arcadedb_server.wipe()
    store = bolt_store(arcadedb_server)
    clock = Clock()
    graph = GraphService(store, clock=clock)
    try:
        # every subject exists and runs somewhere, so both batches take the same steps
        graph.remember_many(
            facts_in({"subject": f"s{k}", "predicate": "RUNS_ON", "object": "h"} for k in range(7))
        )
        sent = []
        for n in (10, 200):
            clock.advance(60)
            items = [
                {"subject": f"s{i % 7}", "predicate": p, "object": f"o{n}-{i}"}
                for i, p in zip(range(n), ["USES", "RUNS_ON"] * n, strict=False)
            ]
            store.queries_sent = []
            res = graph.remember_many(facts_in(items))
            assert res.written == n
            sent.append(len(store.queries_sent))
        assert sent[0] == sent[1] and sent[1] <= 10, sent
    finally:
        store.queries_sent = None
        store.close()
