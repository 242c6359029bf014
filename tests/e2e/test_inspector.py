"""Every server over stdio, SSE and Streamable HTTP through the MCP Inspector CLI (npm).

Per (server, transport) the Inspector lists the tools (with ``--strict``: a tool schema that
other clients cannot use is an error, exit 6), calls ``health``, and calls a tool that does not
exist (exit 5: the Inspector saw ``isError``). Over Streamable HTTP it also calls ``health`` in
the stateless protocol era (2026-07-28, ``server/discover``). The invocations of one test run at
once: each is a Node start plus, over stdio, a server start.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.conftest import SERVERS, RunningServer, node_client, script
from tests.e2e.client_fixtures import TRANSPORTS, client_env, running_servers

pytestmark = pytest.mark.clients


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return client_env(tmp_path_factory.mktemp("inspector"))


@pytest.fixture(scope="module")
def servers(env: dict[str, str]) -> Iterator[dict[tuple[str, str], RunningServer]]:
    node_client("mcp-inspector")  # skip before starting servers if the client is missing
    with running_servers(SERVERS, ("http", "sse"), env) as running:
        yield running


def _inspector(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    cmd = [str(node_client("mcp-inspector")), "--cli", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)


def _target(
    name: str, transport: str, servers: dict[tuple[str, str], RunningServer], env: dict[str, str]
) -> list[str]:
    """The server part of an Inspector command line (target first, before variadic options)."""
    if transport == "stdio":
        # The Inspector hands a stdio server only a minimal environment: pass ours with -e.
        args = [script(name)]
        for key in ("HOME", "PAI_HOME", "PAI_CONFIG"):
            args += ["-e", f"{key}={env[key]}"]
        return args
    return ["--transport", transport, "--server-url", servers[(name, transport)].url]


def _json(out: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert out.returncode == 0, (out.returncode, out.stdout[-2000:], out.stderr[-2000:])
    data: dict[str, Any] = json.loads(out.stdout)
    result: dict[str, Any] = data.get("result", data)
    return result


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("name", SERVERS)
def test_inspector_lists_tools_and_calls_health(
    name: str,
    transport: str,
    servers: dict[tuple[str, str], RunningServer],
    env: dict[str, str],
) -> None:
    target = _target(name, transport, servers, env)
    call_health = ["--method", "tools/call", "--tool-name", "health"]
    runs = {
        "list": [*target, "--method", "tools/list", "--strict", "--format", "json", "-q"],
        "health": [*target, *call_health, "--format", "json", "-q"],
        "unknown": [*target, "--method", "tools/call", "--tool-name", "no_such_tool", "-q"],
    }
    if transport == "http":
        runs["modern"] = [*target, *call_health, "--protocol-era", "modern", "--format", "json"]
    with ThreadPoolExecutor(max_workers=len(runs)) as pool:
        futures = {key: pool.submit(_inspector, args, env) for key, args in runs.items()}
        out = {key: future.result() for key, future in futures.items()}

    tools = {t["name"]: t for t in _json(out["list"])["tools"]}
    assert tools["health"]["annotations"]["readOnlyHint"] is True
    assert all(t.get("inputSchema", {}).get("type") == "object" for t in tools.values())

    health = _json(out["health"])
    assert health["isError"] is False
    assert health["structuredContent"]["server"] == name

    unknown = out["unknown"]
    assert unknown.returncode == 5, (unknown.returncode, unknown.stdout, unknown.stderr)
    assert "no_such_tool" in unknown.stdout + unknown.stderr

    if "modern" in out:
        modern = _json(out["modern"])
        assert modern["isError"] is False
        assert modern["structuredContent"]["server"] == name
        assert modern["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == f"pai-{name}"
