"""get_entity reads incoming facts from the entity's side: under the predicate's inverse where
one is defined, as they are otherwise."""

from __future__ import annotations

from pai_core.memory.graph.service import GraphService
from pai_core.memory.graph.views import FactIn


def test_incoming_facts_are_listed_under_the_inverse(graph: GraphService) -> None:
    graph.define_predicate("RUNS_ON", "one", inverse="HOSTS", aliases=["HOSTED_ON"])
    written = graph.remember(FactIn(subject="web", predicate="HOSTED_ON", object="host1"))
    graph.remember(FactIn(subject="host1", predicate="RELATES_TO", object="rack7"))
    graph.remember(FactIn(subject="note:ops.md", predicate="MENTIONS", object="host1"))
    host = graph.get_entity("host1")
    assert written.fact is not None
    hosts = [f for f in host.incoming if f.id == written.fact.id]
    assert [(f.subject, f.predicate, f.object) for f in hosts] == [("host1", "HOSTS", "web")]
    # no inverse defined: the fact reads as written
    assert [(f.subject, f.predicate) for f in host.incoming if f.id != written.fact.id] == [
        ("note:ops.md", "MENTIONS")
    ]
    # the subject's own view is unchanged, and so is every other way of reading the fact
    assert [(f.predicate, f.object) for f in graph.get_entity("web").outgoing] == [
        ("RUNS_ON", "host1")
    ]
    assert [f.predicate for f in graph.get_entity("rack7").incoming] == ["RELATES_TO"]


def test_a_builtin_inverse_applies_without_declaring_it(graph: GraphService) -> None:
    graph.remember(FactIn(subject="dns-server", predicate="PART_OF", object="PAI"))
    incoming = graph.get_entity("PAI").incoming
    assert [(f.subject, f.predicate, f.object) for f in incoming] == [
        ("PAI", "HAS_PART", "dns-server")
    ]
