"""A verified DNS change is remembered in the shared memory, where membrane (another process)
reads it; a memory that cannot be written never turns an applied change into a failure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from tests.conftest import script
from tests.servers.dns.conftest import DnsServer, query


def _dns_env(knot: DnsServer, pai_env: dict[str, str]) -> dict[str, str]:
    return {
        **pai_env,
        "PAI_DNS_ZONES": "example.test",
        "PAI_DNS_SERVER": "127.0.0.1",
        "PAI_DNS_PORT": str(knot.port),
        "PAI_DNS_TSIG_KEY_NAME": "pai-key",
        "PAI_DNS_TSIG_SECRET": knot.secret,
    }


async def _set_a(s: ClientSession, name: str, value: str) -> dict[str, Any]:
    plan = await s.call_tool(
        "plan_change",
        {
            "zone": "example.test",
            "changes": [{"action": "set", "name": name, "type": "A", "values": [value]}],
        },
    )
    assert not plan.is_error, plan.content
    applied = await s.call_tool("apply_change", {"plan_id": plan.structured_content["plan_id"]})
    assert not applied.is_error, applied.content
    result: dict[str, Any] | None = applied.structured_content
    assert result is not None
    return result


def test_a_dns_change_supersedes_the_old_value_in_membrane(
    knot: DnsServer, pai_env: dict[str, str]
) -> None:
    env = _dns_env(knot, pai_env)

    async def run() -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
        dns = StdioServerParameters(command=script("dns"), env=env)
        async with stdio_client(dns) as (r, w), ClientSession(r, w) as s:
            await s.initialize()
            first = await _set_a(s, "www", "192.0.2.11")
            second = await _set_a(s, "www", "192.0.2.12")
            await _set_a(s, "old", "192.0.2.98")
            deletion = await s.call_tool(
                "delete_record", {"zone": "example.test", "name": "old", "type": "A"}
            )
            gone = await s.call_tool(
                "apply_change", {"plan_id": deletion.structured_content["plan_id"]}
            )
            assert gone.structured_content is not None
        membrane = StdioServerParameters(
            command=script("membrane"), env={**pai_env, "PAI_MEMBRANE_EMBEDDINGS": "false"}
        )
        async with stdio_client(membrane) as (r, w), ClientSession(r, w) as m:
            await m.initialize()
            www = await m.call_tool(
                "get_entity", {"name": "www.example.test", "include_history": True}
            )
            old = await m.call_tool(
                "get_entity", {"name": "old.example.test", "include_history": True}
            )
            timeline = await m.call_tool("timeline", {"since": "1h"})
        assert www.structured_content and old.structured_content and timeline.structured_content
        return (
            [first, second, gone.structured_content],
            www.structured_content,
            {"old": old.structured_content, "timeline": timeline.structured_content},
        )

    results, www, rest = anyio.run(run)
    first, second, gone = results
    assert first["status"] == "applied" and first["memory"]["remembered"]
    assert first["memory"]["source"].startswith("dns:")
    assert second["memory"]["remembered"]
    assert "192.0.2.11" in second["memory"]["detail"]  # what it superseded
    assert gone["memory"]["remembered"] and "ended 1" in gone["memory"]["detail"]

    facts = [f for f in www["outgoing"] if f["predicate"] == "HAS_A"]
    current = [f for f in facts if f["current"]]
    assert [f["value"] for f in current] == ["192.0.2.12"]
    assert current[0]["source"] == second["memory"]["source"]
    superseded = [f for f in facts if f["value"] == "192.0.2.11"]
    assert len(superseded) == 1 and not superseded[0]["current"]
    assert superseded[0]["valid_to"] == current[0]["valid_from"]
    assert superseded[0]["superseded_by"] == current[0]["id"]
    ended = [f for f in rest["old"]["outgoing"] if f["predicate"] == "HAS_A"]
    assert [(f["value"], f["current"]) for f in ended] == [("192.0.2.98", False)]
    assert ended[0]["valid_to"] is not None and ended[0]["retracted_at"] is None
    assert "192.0.2.12" in str(rest["timeline"])
    assert knot.secret not in str(results) + str(www) + str(rest)


def test_an_unwritable_memory_leaves_the_change_applied_and_says_so(
    knot: DnsServer, pai_env: dict[str, str], tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the memory's directory should be")
    env = {**_dns_env(knot, pai_env), "PAI_MEMORY_DB_PATH": str(blocker / "memory.db")}

    async def run() -> dict[str, Any]:
        dns = StdioServerParameters(command=script("dns"), env=env)
        async with stdio_client(dns) as (r, w), ClientSession(r, w) as s:
            await s.initialize()
            return await _set_a(s, "mail", "192.0.2.26")

    applied = anyio.run(run)
    assert applied["status"] == "applied" and applied["verified"]
    assert applied["memory"]["remembered"] is False
    assert "not remembered" in applied["memory"]["detail"]
    assert str(blocker) in applied["memory"]["detail"]
    assert query(knot, "mail.example.test.", "A") == ["192.0.2.26"]


def test_recording_can_be_turned_off(knot: DnsServer, pai_env: dict[str, str]) -> None:
    env = {**_dns_env(knot, pai_env), "PAI_DNS_REMEMBER": "false"}

    async def run() -> dict[str, Any]:
        dns = StdioServerParameters(command=script("dns"), env=env)
        async with stdio_client(dns) as (r, w), ClientSession(r, w) as s:
            await s.initialize()
            return await _set_a(s, "www", "192.0.2.13")

    applied = anyio.run(run)
    assert applied["status"] == "applied"
    assert applied["memory"] == {
        "remembered": False,
        "facts": 0,
        "source": None,
        "detail": "memory recording is off (PAI_DNS_REMEMBER)",
    }
    assert not (Path(pai_env["PAI_HOME"]) / "memory" / "memory.db").exists()
