"""The server runtime as clients and the OS see it: transports, Origin and bearer checks,
non-loopback refusal, logging/setLevel, and graceful shutdown on SIGTERM mid-call."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.sse import sse_client
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPDeprecationWarning

from tests.conftest import free_port, run_server, script, stop_process, wait_for_port

HERE = Path(__file__).parent
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "pai-test", "version": "0"},
    },
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def _post(url: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(url, json=INIT, headers={**MCP_HEADERS, **(headers or {})}, timeout=10)


def test_foreign_origin_and_host_are_rejected(pai_env: dict[str, str]) -> None:
    env = {**pai_env, "PAI_DNS_ALLOWED_ORIGINS": '["https://console.example"]'}
    with run_server("dns", "http", env) as srv:
        assert _post(srv.url).status_code == 200
        assert _post(srv.url, {"Origin": f"http://127.0.0.1:{srv.port}"}).status_code == 200
        assert _post(srv.url, {"Origin": "https://console.example"}).status_code == 200
        evil = _post(srv.url, {"Origin": "http://evil.example"})
        assert evil.status_code == 403
        rebound = _post(srv.url, {"Host": f"evil.example:{srv.port}"})
        assert rebound.status_code == 421


def test_sse_rejects_foreign_origin(pai_env: dict[str, str]) -> None:
    with run_server("verify", "sse", pai_env) as srv:
        r = httpx.get(srv.url, headers={"Origin": "http://evil.example"}, timeout=10)
        assert r.status_code == 403


@pytest.mark.parametrize("transport", ["http", "sse"])
def test_bearer_token_is_required_when_configured(pai_env: dict[str, str], transport: str) -> None:
    token = "t0ken-for-tests-" + "x" * 16
    env = {**pai_env, "PAI_MAIL_HTTP_TOKEN": token}
    with run_server("mail", transport, env) as srv:
        if transport == "http":
            assert _post(srv.url).status_code == 401
            assert _post(srv.url, {"Authorization": "Bearer wrong"}).status_code == 401
            assert _post(srv.url, {"Authorization": f"Bearer {token}"}).status_code == 200
        else:
            assert httpx.get(srv.url, timeout=10).status_code == 401

        async def call() -> dict[str, Any]:
            headers = {"Authorization": f"Bearer {token}"}
            if transport == "http":
                async with (
                    httpx2.AsyncClient(headers=headers) as http,
                    streamable_http_client(srv.url, http_client=http) as (r, w),
                    ClientSession(r, w) as session,
                ):
                    await session.initialize()
                    res = await session.call_tool("health", {})
            else:
                async with (
                    sse_client(srv.url, headers=headers) as (r, w),
                    ClientSession(r, w) as session,
                ):
                    await session.initialize()
                    res = await session.call_tool("health", {})
            return dict(res.structured_content or {})

        health = anyio.run(call)
        assert health["server"] == "mail"
        assert health["settings"]["http_token"] == "***"
        assert token not in srv.log()


def test_non_loopback_bind_without_token_is_refused(pai_env: dict[str, str]) -> None:
    port = free_port()
    proc = subprocess.run(
        [script("dns"), "--transport", "http", "--host", "192.0.2.10", "--port", str(port)],
        env=pai_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "non-loopback address needs a bearer token" in proc.stderr
    assert "PAI_DNS_HTTP_TOKEN" in proc.stderr


def test_set_logging_level_over_stdio(pai_env: dict[str, str]) -> None:
    async def run() -> None:
        params = StdioServerParameters(command=script("gitlab"), env=pai_env)
        async with stdio_client(params) as (r, w), ClientSession(r, w) as session:
            init = await session.initialize()
            assert init.capabilities.logging is not None
            with pytest.warns(MCPDeprecationWarning):
                await session.set_logging_level("debug")
            # still serving
            res = await session.call_tool("health", {})
            assert res.structured_content["server"] == "gitlab"

    anyio.run(run)


def _slow_server(transport: str, env: dict[str, str], port: int = 0) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, str(HERE / "slow_server.py"), "--transport", transport]
    if port:
        cmd += ["--port", str(port)]
    return subprocess.Popen(
        cmd,
        env={**env, "PYTHONPATH": str(HERE.parent.parent)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _wait_for_line(proc: subprocess.Popen[bytes], needle: bytes, timeout: float = 30) -> bytes:
    """Read stderr until ``needle`` appears; return everything read."""
    assert proc.stderr is not None
    seen = b""
    found = threading.Event()

    def reader() -> None:
        nonlocal seen
        assert proc.stderr is not None
        for line in proc.stderr:
            seen += line
            if needle in line:
                found.set()
                return

    threading.Thread(target=reader, daemon=True).start()
    assert found.wait(timeout), f"{needle!r} not seen; stderr so far: {seen.decode()[-2000:]}"
    return seen


def test_sigterm_mid_call_over_stdio_exits_cleanly(pai_env: dict[str, str]) -> None:
    proc = _slow_server("stdio", pai_env)
    try:
        assert proc.stdin is not None and proc.stdout is not None
        msgs = [
            INIT,
            {"jsonrpc": "2.0", "method": "notifications/initialized"},
            {
                "jsonrpc": "2.0",
                "id": 2,
                "method": "tools/call",
                "params": {"name": "nap", "arguments": {"seconds": 30}},
            },
        ]
        import json

        for msg in msgs:
            proc.stdin.write((json.dumps(msg) + "\n").encode())
        proc.stdin.flush()
        _wait_for_line(proc, b"napping 30")
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        assert time.monotonic() - started < 10
        out = proc.stdout.read().decode()
        # stdout carried only protocol messages (the initialize reply), nothing else
        for line in filter(None, out.splitlines()):
            assert json.loads(line)["jsonrpc"] == "2.0"
    finally:
        stop_process(proc)


def test_sigterm_over_http_lets_the_in_flight_call_finish(pai_env: dict[str, str]) -> None:
    port = free_port()
    proc = _slow_server("http", pai_env, port)
    try:
        wait_for_port(port, proc)
        result: dict[str, object] = {}

        async def call() -> None:
            async with (
                streamable_http_client(f"http://127.0.0.1:{port}/mcp") as (r, w),
                ClientSession(r, w) as session,
            ):
                await session.initialize()
                await session.list_tools()  # as clients do; the SDK validates results with it
                res = await session.call_tool("nap", {"seconds": 1.5})
                result["text"] = " ".join(getattr(c, "text", "") for c in res.content)

        worker = threading.Thread(target=anyio.run, args=(call,))
        worker.start()
        _wait_for_line(proc, b"napping 1.5")
        proc.send_signal(signal.SIGTERM)
        worker.join(30)
        assert result.get("text") == "slept 1.5"
        assert proc.wait(15) == 0
    finally:
        stop_process(proc)
