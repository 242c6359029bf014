"""The mail server end to end: real Dovecot + Postfix, the server over stdio, the SDK client."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from pai_core.audit import AuditLog
from tests.conftest import script
from tests.servers.mail.conftest import fresh
from tests.servers.mail.mailservers import MailStack

TOOLS = {
    "health",
    "list_accounts",
    "create_account",
    "reset_password",
    "set_quota",
    "disable_account",
    "enable_account",
    "delete_account",
    "add_alias",
    "remove_alias",
    "validate_account",
}


def test_create_list_validate_delete_through_mcp(
    mail_stack: MailStack, pai_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**pai_env, **mail_stack.env()}
    address = fresh("mcp")
    stderr_path = tmp_path / "server-stderr.log"

    async def run() -> dict[str, Any]:
        params = StdioServerParameters(command=script("mail"), env=env)
        with stderr_path.open("w") as errlog:
            async with stdio_client(params, errlog=errlog) as (r, w), ClientSession(r, w) as s:
                await s.initialize()
                tools = {t.name: t for t in (await s.list_tools()).tools}
                assert set(tools) == TOOLS
                delete, listing = tools["delete_account"], tools["list_accounts"]
                assert delete.annotations and delete.annotations.destructive_hint is True
                assert listing.annotations and listing.annotations.read_only_hint is True
                health = (await s.call_tool("health", {})).structured_content
                assert health["status"] == "ok", health
                created = await s.call_tool(
                    "create_account", {"address": address, "quota": "1G", "display_name": "M C"}
                )
                assert not created.is_error, created.content
                password = created.structured_content["password"]
                pw_file = tmp_path / "pw"
                pw_file.write_text(password + "\n")
                listed = await s.call_tool("list_accounts", {"domain": "example.test"})
                valid = await s.call_tool(
                    "validate_account", {"address": address, "password_file": str(pw_file)}
                )
                bad = await s.call_tool("create_account", {"address": "x@unmanaged.example"})
                dup = await s.call_tool("create_account", {"address": address})
                wrong = await s.call_tool("set_quota", {"address": address, "quota": 5})
                deleted = await s.call_tool("delete_account", {"address": address})
                return {
                    "created": created.structured_content,
                    "listed": listed.structured_content,
                    "valid": valid.structured_content,
                    "bad": bad,
                    "dup": dup,
                    "wrong": wrong,
                    "deleted": deleted.structured_content,
                }

    got = anyio.run(run)
    created, listed, valid = got["created"], got["listed"], got["valid"]
    password = created["password"]
    assert [c["step"] for c in created["proof"]][-2:] == ["delivery", "cleanup"]
    assert created["memory"]["remembered"]
    assert address in [a["address"] for a in listed["accounts"]]
    assert valid["ok"] and valid["failed_step"] is None
    assert got["bad"].is_error and "PolicyDenied" in got["bad"].content[0].text
    assert "managed-domains" in got["bad"].content[0].text
    assert got["dup"].is_error and "already exists" in got["dup"].content[0].text
    assert got["wrong"].is_error and "quota" in got["wrong"].content[0].text
    assert got["deleted"]["archive"] and Path(got["deleted"]["archive"]).exists()
    assert address not in mail_stack.passwd_file.read_text()
    audit_file = Path(pai_env["PAI_HOME"]) / "audit.jsonl"
    actions = [e["action"] for e in AuditLog(audit_file).entries()]
    assert actions == ["mail.create_account", "mail.delete_account"]
    assert password not in audit_file.read_text()
    assert password not in stderr_path.read_text()
