"""MemBrane end to end over stdio with the SDK client: two sessions share one memory."""

from __future__ import annotations

from typing import Any

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from tests.conftest import script

TOOLS = {
    "remember_fact",
    "remember_facts",
    "retract_fact",
    "get_entity",
    "query_facts",
    "traverse",
    "timeline",
    "list_conflicts",
    "resolve_conflict",
    "define_predicate",
    "add_alias",
    "merge_entities",
    "list_predicates",
    "health",
}


async def _session(env: dict[str, str], calls: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    params = StdioServerParameters(command=script("membrane"), env=env)
    async with stdio_client(params) as (r, w), ClientSession(r, w) as s:
        await s.initialize()
        tools = {t.name: t for t in (await s.list_tools()).tools}
        assert set(tools) >= TOOLS
        assert tools["get_entity"].annotations.read_only_hint
        assert tools["merge_entities"].annotations.destructive_hint
        return [await s.call_tool(name, args) for name, args in calls]


def test_memory_survives_sessions_and_reports_conflicts(pai_env: dict[str, str]) -> None:
    first = anyio.run(
        _session,
        pai_env,
        [
            (
                "remember_fact",
                {
                    "fact": {
                        "subject": "MemBrane",
                        "predicate": "RUNS_ON",
                        "object": "inference01",
                        "subject_type": "service",
                        "source": "session-1",
                    }
                },
            ),
            (
                "remember_facts",
                {
                    "facts": [
                        {"subject": "MemBrane", "predicate": "USES", "object": "SQLite"},
                        {"subject": "MemBrane", "predicate": "PART_OF", "object": "PAI"},
                    ]
                },
            ),
        ],
    )
    assert all(not r.is_error for r in first), [r.content for r in first]
    second = anyio.run(
        _session,
        pai_env,
        [
            (
                "remember_fact",
                {
                    "fact": {
                        "subject": "membrane",
                        "predicate": "hosted on",
                        "object": "inference02",
                    }
                },
            ),
            ("get_entity", {"name": "MEMBRANE"}),
            ("traverse", {"start": "PAI", "depth": 2}),
            ("timeline", {"since": "1 hour ago"}),
            (
                "remember_fact",
                {"fact": {"subject": "x", "predicate": "not a predicate!", "object": "y"}},
            ),
            (
                "remember_fact",
                {
                    "fact": {
                        "subject": "x",
                        "predicate": "USES",
                        "object": "y",
                        "valid_from": "whenever",
                    }
                },
            ),
            ("retract_fact", {"fact_id": "f-does-not-exist"}),
            ("merge_entities", {"source": "PAI", "target": "pai"}),
            ("query_facts", {"predicate": "RUNS_ON", "include_history": True}),
        ],
    )
    moved, entity, hops, timeline, bad_pred, bad_time, unknown, self_merge, history = second
    [conflict] = moved.structured_content["conflicts"]
    assert conflict["rule"] == "cardinality-one"
    assert conflict["action"] == "superseded-existing"
    assert conflict["existing"]["object"] == "inference01"
    outgoing = {(f["predicate"], f["object"]) for f in entity.structured_content["outgoing"]}
    assert outgoing == {("RUNS_ON", "inference02"), ("USES", "SQLite"), ("PART_OF", "PAI")}
    assert {n["name"] for n in hops.structured_content["nodes"]} >= {"PAI", "MemBrane", "SQLite"}
    assert timeline.structured_content["groups"][0]["group"] == "PAI"
    assert bad_pred.is_error and "predicate" in bad_pred.content[0].text
    assert bad_time.is_error and "valid_from" in bad_time.content[0].text
    assert unknown.is_error and "NotFound" in unknown.content[0].text
    assert self_merge.is_error and "itself" in self_merge.content[0].text
    assert len(history.structured_content["facts"]) == 2
