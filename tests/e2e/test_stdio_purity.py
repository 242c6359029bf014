"""In stdio mode a server writes nothing to stdout but protocol messages.

Each server runs at DEBUG with a raw JSON-RPC client that keeps every byte of stdout: a normal
conversation, a log-level change (which the server logs), calls with bad and malformed
arguments, an unknown method. Every stdout line must be one JSON-RPC 2.0 message, the log lines
must have gone to stderr, and the server must exit 0 once its stdin closes.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import SERVERS
from tests.e2e.client_fixtures import INITIALIZE, INITIALIZED, stdio_exchange


def _call(request_id: int, params: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}


@pytest.mark.parametrize("name", SERVERS)
def test_stdout_carries_only_json_rpc(name: str, pai_env: dict[str, str]) -> None:
    env = {**pai_env, f"PAI_{name.upper()}_LOG_LEVEL": "DEBUG"}
    messages: list[dict[str, Any] | str] = [
        INITIALIZE,
        INITIALIZED,
        {"jsonrpc": "2.0", "id": 2, "method": "logging/setLevel", "params": {"level": "debug"}},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/list"},
        _call(4, {"name": "health", "arguments": {}}),
        _call(5, {"name": "health", "arguments": {"unexpected": 1}}),
        _call(6, {"name": "no_such_tool", "arguments": {}}),
        {"jsonrpc": "2.0", "id": 7, "method": "no/such/method"},
        _call(8, {"name": "health", "arguments": "not an object"}),
        _call(9, {"name": "health"}),
    ]
    got = stdio_exchange(name, env, messages)

    for line in got.stdout_lines:  # every stdout line is one JSON-RPC 2.0 message
        message = json.loads(line)
        assert message.get("jsonrpc") == "2.0", line
    replies = got.replies()
    assert set(replies) == set(range(1, 10)), got.stderr[-3000:]
    assert got.returncode == 0, got.stderr[-3000:]

    assert replies[1]["result"]["serverInfo"]["name"] == f"pai-{name}"
    assert "health" in {t["name"] for t in replies[3]["result"]["tools"]}
    for ok in (4, 5, 9):
        assert replies[ok]["result"]["structuredContent"]["server"] == name
    assert replies[6]["result"]["isError"] is True
    assert replies[7]["error"]["code"] == -32601
    assert replies[8]["error"]["code"] == -32602

    # The server did log (at DEBUG, and about the level change): to stderr, not stdout.
    assert "log level set to debug" in got.stderr
    assert "log level set to debug" not in "".join(got.stdout_lines)
