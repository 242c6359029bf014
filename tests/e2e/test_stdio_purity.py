"""In stdio mode a server writes nothing to stdout but protocol messages."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import SERVERS, script, stop_process

INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "purity", "version": "0"},
    },
}


@pytest.mark.parametrize("name", SERVERS)
def test_stdout_carries_only_json_rpc(name: str, pai_env: dict[str, str]) -> None:
    messages = [
        INIT,
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "tools/call",
            "params": {"name": "health", "arguments": {}},
        },
        {
            "jsonrpc": "2.0",
            "id": 4,
            "method": "tools/call",
            "params": {"name": "health", "arguments": {"unexpected": 1}},
        },
        {"jsonrpc": "2.0", "id": 5, "method": "no/such/method"},
    ]
    env = {**pai_env, "PAI_" + name.upper() + "_LOG_LEVEL": "DEBUG"}
    proc = subprocess.Popen(
        [script(name)],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdin is not None and proc.stdout is not None
        for message in messages:
            proc.stdin.write(json.dumps(message) + "\n")
        proc.stdin.flush()
        parsed = []
        while {1, 2, 3, 4, 5} - {m.get("id") for m in parsed}:
            line = proc.stdout.readline()  # bounded by the test timeout
            assert line, "server closed stdout before answering everything"
            parsed.append(json.loads(line))  # every stdout line is JSON …
        proc.stdin.close()
        rest = proc.stdout.read()
        assert proc.wait(30) == 0
        assert not rest.strip()
    finally:
        stop_process(proc)  # type: ignore[arg-type]
    assert all(m.get("jsonrpc") == "2.0" for m in parsed)  # … and JSON-RPC
    by_id = {m.get("id"): m for m in parsed}
    assert by_id[3]["result"]["structuredContent"]["server"] == name
    assert by_id[5]["error"]["code"] == -32601
