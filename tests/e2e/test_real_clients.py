"""Every server, every transport, driven by MCP clients written by others.

- the official Python SDK client over stdio, SSE and Streamable HTTP;
- the MCP Inspector CLI (npm) over the same three;
- the MCP conformance suite (npm) over Streamable HTTP, with an expected-failures baseline that
  lists only scenarios needing the suite's own fixtures (a regression or a newly passing
  scenario fails the run);
- Claude Code's `claude mcp list` against a generated `.mcp.json` of stdio servers.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.sse import sse_client
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from tests.conftest import (
    SERVERS,
    RunningServer,
    assert_claude_sees_every_server,
    node_client,
    run_server,
    script,
)

HERE = Path(__file__).parent
TRANSPORTS = ["stdio", "sse", "http"]


@pytest.fixture(scope="module")
def module_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    import os

    base = tmp_path_factory.mktemp("clients")
    (base / "home").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAI_")}
    env.update(
        HOME=str(base / "home"),
        PAI_HOME=str(base / "pai"),
        PAI_CONFIG=str(base / "config.toml"),
        DISABLE_AUTOUPDATER="1",
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
    )
    return env


@pytest.fixture(scope="module")
def http_servers(module_env: dict[str, str]) -> Iterator[dict[tuple[str, str], RunningServer]]:
    """One process per (server, http|sse) for the whole module; stopped by PID at the end."""
    running: dict[tuple[str, str], RunningServer] = {}
    managers = []
    try:
        for name in SERVERS:
            for transport in ("http", "sse"):
                cm = run_server(name, transport, module_env)
                running[(name, transport)] = cm.__enter__()
                managers.append(cm)
        yield running
    finally:
        for cm in reversed(managers):
            cm.__exit__(None, None, None)


async def _sdk_session(transport: str, target: str, env: dict[str, str]) -> dict[str, Any]:
    if transport == "stdio":
        cm: Any = stdio_client(StdioServerParameters(command=script(target), env=env))
    elif transport == "sse":
        cm = sse_client(target)
    else:
        cm = streamable_http_client(target)
    async with cm as streams, ClientSession(streams[0], streams[1]) as session:
        init = await session.initialize()
        tools = (await session.list_tools()).tools
        health = await session.call_tool("health", {})
        unknown = await session.call_tool("no_such_tool", {})
        again = await session.call_tool("health", {})
        return {
            "server": init.server_info.name,
            "logging": init.capabilities.logging is not None,
            "tools": {t.name: t for t in tools},
            "health": health,
            "unknown": unknown,
            "again": again,
        }


def _target(name: str, transport: str, servers: dict[tuple[str, str], RunningServer]) -> str:
    return name if transport == "stdio" else servers[(name, transport)].url


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("name", SERVERS)
def test_sdk_client(
    name: str,
    transport: str,
    http_servers: dict[tuple[str, str], RunningServer],
    module_env: dict[str, str],
) -> None:
    target = _target(name, transport, http_servers)
    got = anyio.run(_sdk_session, transport, target, module_env)
    assert got["server"] == f"pai-{name}"
    assert got["logging"]
    health_tool = got["tools"]["health"]
    assert health_tool.annotations.read_only_hint is True
    assert health_tool.output_schema is not None
    for tool in got["tools"].values():
        assert tool.annotations is not None, f"{tool.name} has no annotations"
        assert tool.description, f"{tool.name} has no description"
    health = got["health"]
    assert not health.is_error
    assert health.structured_content["server"] == name
    assert health.structured_content["status"] in ("ok", "degraded", "unconfigured")
    assert got["unknown"].is_error and "no_such_tool" in got["unknown"].content[0].text
    assert not got["again"].is_error  # still serving after the error


def _inspector(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    inspector = node_client("mcp-inspector")
    return subprocess.run(
        [str(inspector), "--cli", *args], env=env, capture_output=True, text=True, timeout=120
    )


def _inspector_target(
    name: str, transport: str, servers: dict[tuple[str, str], RunningServer]
) -> list[str]:
    if transport == "stdio":
        return [script(name)]
    url = servers[(name, transport)].url
    return ["--transport", "http" if transport == "http" else "sse", "--server-url", url]


@pytest.mark.clients
@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("name", SERVERS)
def test_mcp_inspector_cli(
    name: str,
    transport: str,
    http_servers: dict[tuple[str, str], RunningServer],
    module_env: dict[str, str],
) -> None:
    env_args: list[str] = []
    if transport == "stdio":
        env_args = []
        for key in ("PAI_HOME", "PAI_CONFIG", "HOME"):
            env_args += ["-e", f"{key}={module_env[key]}"]
    target = _inspector_target(name, transport, http_servers)
    listed = _inspector([*target, *env_args, "--method", "tools/list"], module_env)
    assert listed.returncode == 0, listed.stderr
    tools = {t["name"] for t in json.loads(listed.stdout)["tools"]}
    assert "health" in tools
    called = _inspector(
        [
            *target,
            *env_args,
            "--method",
            "tools/call",
            "--tool-name",
            "health",
            "--format",
            "json",
            "-q",
        ],
        module_env,
    )
    assert called.returncode == 0, called.stderr
    result = json.loads(called.stdout)
    result = result.get("result", result)
    assert result["isError"] is False
    assert result["structuredContent"]["server"] == name
    unknown = _inspector(
        [*target, *env_args, "--method", "tools/call", "--tool-name", "no_such_tool"], module_env
    )
    assert unknown.returncode == 5, (unknown.returncode, unknown.stdout, unknown.stderr)


@pytest.mark.clients
@pytest.mark.parametrize("name", SERVERS)
def test_conformance_suite(
    name: str,
    http_servers: dict[tuple[str, str], RunningServer],
    module_env: dict[str, str],
    tmp_path: Path,
) -> None:
    conformance = node_client("conformance")
    node = node_client("node")  # the suite needs Node 22; the package `node` provides it
    out = subprocess.run(
        [
            str(node),
            str(conformance),
            "server",
            "--url",
            http_servers[(name, "http")].url,
            "--expected-failures",
            str(HERE / "conformance-expected-failures.yml"),
            "-o",
            str(tmp_path / "results"),
        ],
        env=module_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    summary = out.stdout[out.stdout.find("=== SUMMARY ===") :]
    assert out.returncode == 0, summary or out.stdout[-3000:] + out.stderr[-2000:]
    for must_pass in (
        "server-initialize",
        "ping",
        "tools-list",
        "logging-set-level",
        "resources-list",
        "prompts-list",
        "dns-rebinding-protection",
        "server-sse-multiple-streams",
    ):
        assert f"✓ {must_pass}:" in summary, summary


@pytest.mark.clients
def test_claude_code_connects_to_every_stdio_server(
    module_env: dict[str, str], tmp_path: Path
) -> None:
    node_client("claude")  # skip early if the client is not installed
    config = {
        "mcpServers": {
            f"pai-{name}": {
                "type": "stdio",
                "command": script(name),
                "args": [],
                "env": {k: module_env[k] for k in ("PAI_HOME", "PAI_CONFIG")},
            }
            for name in SERVERS
        }
    }
    (tmp_path / ".mcp.json").write_text(json.dumps(config))
    assert_claude_sees_every_server(tmp_path, module_env)
