"""The DNS server end to end: a real Knot primary, the server over stdio, the SDK client."""

from __future__ import annotations

from pathlib import Path

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from pai_core.audit import AuditLog
from tests.conftest import script
from tests.servers.dns.conftest import DnsServer, query


def test_plan_apply_verify_through_mcp(
    knot: DnsServer, pai_env: dict[str, str], tmp_path: Path
) -> None:
    env = {
        **pai_env,
        "PAI_DNS_ZONES": "example.test",
        "PAI_DNS_SERVER": "127.0.0.1",
        "PAI_DNS_PORT": str(knot.port),
        "PAI_DNS_TSIG_KEY_NAME": "pai-key",
        "PAI_DNS_TSIG_SECRET": knot.secret,
    }

    async def run() -> dict[str, object]:
        params = StdioServerParameters(command=script("dns"), env=env)
        async with stdio_client(params) as (r, w), ClientSession(r, w) as s:
            await s.initialize()
            tools = {t.name: t for t in (await s.list_tools()).tools}
            assert {
                "list_zones",
                "list_records",
                "plan_change",
                "apply_change",
                "verify_record",
                "delete_record",
                "health",
            } <= set(tools)
            apply_hints, list_hints = (
                tools["apply_change"].annotations,
                tools["list_records"].annotations,
            )
            assert apply_hints is not None and apply_hints.destructive_hint is True
            assert list_hints is not None and list_hints.read_only_hint is True
            health = (await s.call_tool("health", {})).structured_content
            assert health["status"] == "ok" and health["configured"]
            assert knot.secret not in str(health)

            plan = await s.call_tool(
                "plan_change",
                {
                    "zone": "example.test",
                    "changes": [
                        {"action": "set", "name": "api", "type": "A", "values": ["192.0.2.40"]}
                    ],
                },
            )
            assert not plan.is_error, plan.content
            plan_id = plan.structured_content["plan_id"]
            applied = await s.call_tool("apply_change", {"plan_id": plan_id})
            assert applied.structured_content["status"] == "applied"
            verified = await s.call_tool(
                "verify_record",
                {"zone": "example.test", "name": "api", "type": "A", "expected": ["192.0.2.40"]},
            )
            assert verified.structured_content["ok"]

            deletion = await s.call_tool(
                "delete_record", {"zone": "example.test", "name": "api", "type": "A"}
            )
            gone = await s.call_tool(
                "apply_change", {"plan_id": deletion.structured_content["plan_id"]}
            )
            assert gone.structured_content["verified"]

            refused = await s.call_tool(
                "plan_change",
                {
                    "zone": "example.test",
                    "changes": [{"name": "@", "type": "NS", "values": ["ns9.example.test."]}],
                },
            )
            bad = await s.call_tool(
                "plan_change",
                {
                    "zone": "example.test",
                    "changes": [{"name": "www", "type": "A", "values": ["not-an-ip"]}],
                },
            )
            wrong_type = await s.call_tool(
                "plan_change", {"zone": "example.test", "changes": "www A 1.2.3.4"}
            )
            still = await s.call_tool("list_records", {"zone": "example.test", "name": "www"})
            return {"refused": refused, "bad": bad, "wrong_type": wrong_type, "still": still}

    got = anyio.run(run)
    refused, bad, wrong_type, still = (got[k] for k in ("refused", "bad", "wrong_type", "still"))
    assert refused.is_error and "PolicyDenied" in refused.content[0].text  # type: ignore[attr-defined]
    assert "protected-record" in refused.content[0].text  # type: ignore[attr-defined]
    assert bad.is_error and "not valid A data" in bad.content[0].text  # type: ignore[attr-defined]
    assert wrong_type.is_error and "changes" in wrong_type.content[0].text  # type: ignore[attr-defined]
    assert still.structured_content["records"][0]["values"] == ["192.0.2.1"]  # type: ignore[attr-defined]
    assert query(knot, "api.example.test.", "A") == []
    log = AuditLog(Path(pai_env["PAI_HOME"]) / "audit.jsonl")
    assert [e["result"] for e in log.entries()] == ["applied", "applied"]
    assert log.verify().ok
    assert knot.secret not in (Path(pai_env["PAI_HOME"]) / "audit.jsonl").read_text()


def test_doctor_reads_each_zone(knot: DnsServer, pai_env: dict[str, str]) -> None:
    import subprocess

    from tests.conftest import VENV_BIN

    env = {
        **pai_env,
        "PAI_DNS_ZONES": "example.test",
        "PAI_DNS_SERVER": "127.0.0.1",
        "PAI_DNS_PORT": str(knot.port),
        "PAI_DNS_TSIG_KEY_NAME": "pai-key",
        "PAI_DNS_TSIG_SECRET": knot.secret,
    }
    ok = subprocess.run(
        [str(VENV_BIN / "pai"), "doctor", "dns"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "AXFR with the TSIG key" in ok.stdout
    knot.stop()
    down = subprocess.run(
        [str(VENV_BIN / "pai"), "doctor", "dns"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert down.returncode == 1 and "zone example.test" in down.stdout
