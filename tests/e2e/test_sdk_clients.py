"""Every server over stdio, SSE and Streamable HTTP through the official MCP Python SDK client.

One session per (server, transport): initialize, ping, set the log level, list the tools, call
``health`` (the client validates its structured result against the declared output schema),
call a tool that does not exist, and call ``health`` again to show the server kept serving.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anyio
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.sse import sse_client
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp.types import CallToolResult, InitializeResult, Tool

from tests.conftest import SERVERS, RunningServer, script
from tests.e2e.client_fixtures import TRANSPORTS, client_env, running_servers


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return client_env(tmp_path_factory.mktemp("sdk-clients"))


@pytest.fixture(scope="module")
def servers(env: dict[str, str]) -> Iterator[dict[tuple[str, str], RunningServer]]:
    with running_servers(SERVERS, ("http", "sse"), env) as running:
        yield running


@dataclass
class Session:
    init: InitializeResult
    tools: dict[str, Tool]
    health: CallToolResult
    unknown: CallToolResult
    again: CallToolResult


async def _session(transport: str, name: str, url: str, env: dict[str, str]) -> Session:
    client: Any
    if transport == "stdio":
        client = stdio_client(StdioServerParameters(command=script(name), env=env))
    elif transport == "sse":
        client = sse_client(url)
    else:
        client = streamable_http_client(url)
    with anyio.fail_after(60):
        async with client as streams, ClientSession(streams[0], streams[1]) as session:
            init = await session.initialize()
            await session.send_ping()
            with warnings.catch_warnings():  # deprecated from protocol 2026-07-28 on
                warnings.simplefilter("ignore", MCPDeprecationWarning)
                await session.set_logging_level("warning")
            tools = {t.name: t for t in (await session.list_tools()).tools}
            health = await session.call_tool("health", {})
            unknown = await session.call_tool("no_such_tool", {})
            again = await session.call_tool("health", {})
    return Session(init, tools, health, unknown, again)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("name", SERVERS)
def test_sdk_client_lists_tools_and_calls_health(
    name: str,
    transport: str,
    servers: dict[tuple[str, str], RunningServer],
    env: dict[str, str],
) -> None:
    url = "" if transport == "stdio" else servers[(name, transport)].url
    got = anyio.run(_session, transport, name, url, env)

    assert got.init.server_info.name == f"pai-{name}"
    assert got.init.server_info.version
    assert got.init.instructions, "the model needs to know what the server is for"
    assert got.init.capabilities.tools is not None
    assert got.init.capabilities.logging is not None

    health_tool = got.tools["health"]
    assert health_tool.annotations is not None
    assert health_tool.annotations.read_only_hint is True
    assert health_tool.annotations.destructive_hint is False
    assert health_tool.output_schema is not None
    for tool in got.tools.values():
        assert tool.description, f"{tool.name} has no description for the model"
        assert tool.annotations is not None, f"{tool.name} has no annotations"

    assert not got.health.is_error, got.health.content
    assert got.health.structured_content is not None
    assert got.health.structured_content["server"] == name
    assert got.health.structured_content["status"] in ("ok", "degraded", "unconfigured")

    assert got.unknown.is_error
    assert "no_such_tool" in got.unknown.content[0].text  # type: ignore[union-attr]
    assert not got.again.is_error, "the server stopped serving after an error"
