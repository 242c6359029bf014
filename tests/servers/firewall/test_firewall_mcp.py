"""The firewall server end to end: the SDK client over stdio and HTTP, nftables in a namespace,
and the server killed with -9 while a change waits for confirmation."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, TextContent

from pai_core.audit import AuditLog
from pai_firewall.deadman import guard_alive, read_pending
from tests.conftest import run_server, script
from tests.servers.firewall.conftest import finish_guards, nft, wait_until

SSH = {
    "chain": "input",
    "protocol": "tcp",
    "dport": [22],
    "saddr": ["10.0.0.0/8"],
    "action": "accept",
    "owner": "ops",
    "comment": "ssh from management",
}
DROP_8080 = {
    "chain": "input",
    "protocol": "tcp",
    "dport": [8080],
    "action": "drop",
    "comment": "close the test port",
    "expires_in_days": 1,
}


def _env(pai_env: dict[str, str], ns: str, constitution: Path) -> dict[str, str]:
    return {
        **pai_env,
        "PAI_FIREWALL_NETNS": ns,
        "PAI_FIREWALL_CONSTITUTION": str(constitution),
    }


def _text(result: CallToolResult) -> str:
    return " ".join(c.text for c in result.content if isinstance(c, TextContent))


def _dports(ns: str) -> list[Any]:
    out = nft(ns, "-j", "list", "table", "inet", "pai")
    if out.returncode != 0:
        return []
    items = json.loads(out.stdout)["nftables"]
    return [
        e["match"]["right"]
        for item in items
        if "rule" in item
        for e in item["rule"]["expr"]
        if "match" in e and e["match"]["left"].get("payload", {}).get("field") == "dport"
    ]


async def _call(s: ClientSession, name: str, args: dict[str, Any]) -> dict[str, Any]:
    result = await s.call_tool(name, args)
    assert not result.is_error, _text(result)
    assert result.structured_content is not None
    return result.structured_content


def test_every_tool_over_stdio(
    netns: str, pai_env: dict[str, str], constitution_file: Path
) -> None:
    env = _env(pai_env, netns, constitution_file)
    bad_rules = {
        "cidr": {**DROP_8080, "saddr": ["10.0.0.300/8"]},
        "port": {**DROP_8080, "dport": [70000]},
        "chain": {**DROP_8080, "chain": "postrouting"},
        "comment": {**DROP_8080, "comment": 'x"; flush ruleset; "'},
    }

    async def run() -> dict[str, Any]:
        params = StdioServerParameters(command=script("firewall"), env=env)
        async with stdio_client(params) as (r, w), ClientSession(r, w) as s:
            await s.initialize()
            tools = {t.name: t for t in (await s.list_tools()).tools}
            assert {
                "health", "list_rules", "plan_change", "apply_change", "confirm_change",
                "rollback", "explain", "history",
            } <= set(tools)  # fmt: skip
            assert tools["apply_change"].annotations.destructive_hint is True  # type: ignore[union-attr]
            assert tools["explain"].annotations.read_only_hint is True  # type: ignore[union-attr]
            health = await _call(s, "health", {})
            assert health["status"] == "ok", health
            plan = await _call(
                s,
                "plan_change",
                {"changes": [{"op": "add", "rule": SSH}, {"op": "add", "rule": DROP_8080}]},
            )
            assert plan["allowed"] and len(plan["verdicts"]) == 4
            applied = await _call(
                s, "apply_change", {"plan_id": plan["plan_id"], "confirm_within_s": 30}
            )
            assert applied["status"] == "pending-confirmation"
            listed = await _call(s, "list_rules", {})
            assert listed["pending"]["change_id"] == applied["change_id"]
            confirmed = await _call(s, "confirm_change", {"change_id": applied["change_id"]})
            explained = await _call(
                s, "explain", {"packet": {"protocol": "tcp", "dport": 8080, "saddr": "192.0.2.1"}}
            )
            errors = {
                key: await s.call_tool("plan_change", {"changes": [{"op": "add", "rule": bad}]})
                for key, bad in bad_rules.items()
            }
            errors["unknown rule"] = await s.call_tool(
                "plan_change", {"changes": [{"op": "remove", "rule_id": "0badc0de"}]}
            )
            errors["raw text"] = await s.call_tool(
                "plan_change", {"changes": "add rule inet pai input drop"}
            )
            after = await _call(s, "list_rules", {})
            history = await _call(s, "history", {})
            return {
                "confirmed": confirmed,
                "explained": explained,
                "errors": errors,
                "after": after,
                "history": history,
            }

    got = anyio.run(run)
    assert got["confirmed"]["memory"]["remembered"] is True
    assert got["explained"]["verdict"] == "drop"
    assert got["explained"]["outcomes"][0]["rule"]["dport"] == [8080]
    messages = {k: _text(v) for k, v in got["errors"].items()}
    assert all(v.is_error for v in got["errors"].values()), messages
    assert "not a valid address or CIDR" in messages["cidr"]
    assert "port 70000 is out of range" in messages["port"]
    assert "unknown chain 'postrouting'" in messages["chain"]
    assert "comment contains" in messages["comment"]
    assert "no rule 0badc0de" in messages["unknown rule"]
    assert "changes" in messages["raw text"]
    assert [r["text"] for r in got["after"]["rules"]] == [
        "tcp saddr 10.0.0.0/8 dport 22 accept",
        "tcp dport 8080 drop",
    ]
    assert [e["action"] for e in got["history"]["entries"]] == ["confirm", "apply", "plan"]
    assert _dports(netns) == [22, 8080]


def test_kill_9_after_apply_still_rolls_back_and_a_restarted_server_can_confirm(
    netns: str, pai_env: dict[str, str], constitution_file: Path, tmp_path: Path
) -> None:
    env = _env(pai_env, netns, constitution_file)
    data_dir = Path(pai_env["PAI_HOME"]) / "firewall"

    async def plan_and_apply(url: str, window: int) -> dict[str, Any]:
        async with streamable_http_client(url) as streams, ClientSession(*streams[:2]) as s:
            await s.initialize()
            plan = await _call(s, "plan_change", {"changes": [{"op": "add", "rule": DROP_8080}]})
            return await _call(
                s, "apply_change", {"plan_id": plan["plan_id"], "confirm_within_s": window}
            )

    async def confirm(url: str, change_id: str) -> dict[str, Any]:
        async with streamable_http_client(url) as streams, ClientSession(*streams[:2]) as s:
            await s.initialize()
            return await _call(s, "confirm_change", {"change_id": change_id})

    try:
        # 1. Killed right after the apply: the detached guard still rolls back on time.
        with run_server("firewall", "http", env) as srv:
            applied = anyio.run(plan_and_apply, srv.url, 2)
            srv.proc.kill()
            srv.proc.wait()
        assert _dports(netns) == [8080]
        log = AuditLog(Path(pai_env["PAI_HOME"]) / "audit.jsonl")

        def rollbacks() -> list[dict[str, Any]]:
            return [e for e in log.entries() if e["action"] == "firewall.rollback"]

        wait_until(lambda: rollbacks(), what="the rollback after kill -9")
        assert _dports(netns) == []
        rollback = rollbacks()
        assert [(e["change_id"], e["reason"], e["result"]) for e in rollback] == [
            (applied["change_id"], "not confirmed in time", "rolled_back")
        ]
        # 2. Killed while a change waits: a restarted server confirms it and it stays.
        with run_server("firewall", "http", env) as srv:
            applied = anyio.run(plan_and_apply, srv.url, 30)  # a slow restart still in time
            srv.proc.kill()
            srv.proc.wait()
        pending = read_pending(data_dir)
        assert pending is not None and guard_alive(pending["guard_pid"])
        with run_server("firewall", "http", env) as srv:
            confirmed = anyio.run(confirm, srv.url, applied["change_id"])
        assert confirmed["status"] == "confirmed"
        wait_until(lambda: not guard_alive(pending["guard_pid"]), what="the guard to exit")
        assert time.time() < pending["deadline"] + 30
        assert _dports(netns) == [8080]
        assert log.verify().ok
    finally:
        finish_guards(data_dir)
