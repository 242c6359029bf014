"""A tool called with bad arguments answers with a clear ``isError`` result; the server goes on.

The calls are derived from each tool's own ``inputSchema``, so the test follows the servers as
they grow: every tool with required parameters is called once with none of them and once with
a value of the wrong JSON type for each typed one. Arguments are validated before a tool runs,
so neither call can change anything. The error must name the tool and every offending field,
and ``health`` must still answer afterwards. Over stdio (what Claude Code spawns) and
Streamable HTTP, with the official SDK client.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anyio
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, TextContent, Tool

from tests.conftest import SERVERS, RunningServer, script
from tests.e2e.client_fixtures import client_env, running_servers

# A value no pydantic field of that JSON type accepts (pydantic does not turn a dict into a
# string, nor a non-numeric string into a number; the SDK only JSON-decodes valid JSON).
WRONG_VALUE: dict[str, Any] = {
    "string": {"not": "a string"},
    "integer": "not a number",
    "number": "not a number",
    "boolean": "not a boolean",
    "array": "not an array",
    "object": "not an object",
}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return client_env(tmp_path_factory.mktemp("bad-arguments"))


@pytest.fixture(scope="module")
def servers(env: dict[str, str]) -> Iterator[dict[tuple[str, str], RunningServer]]:
    with running_servers(SERVERS, ("http",), env) as running:
        yield running


@dataclass
class BadCall:
    tool: str
    arguments: dict[str, Any]
    fields: list[str]  # the fields the error must name
    result: CallToolResult | None = None


def _bad_calls(tool: Tool) -> list[BadCall]:
    schema = tool.input_schema
    required: list[str] = list(schema.get("required", []))
    if not required:
        return []
    calls = [BadCall(tool.name, {}, required)]
    typed = {
        field: WRONG_VALUE[kind]
        for field in required
        if isinstance(kind := schema.get("properties", {}).get(field, {}).get("type"), str)
        and kind in WRONG_VALUE
    }
    if typed:
        calls.append(BadCall(tool.name, typed, required))  # wrong types + the rest missing
    return calls


async def _exercise(transport: str, name: str, url: str, env: dict[str, str]) -> dict[str, Any]:
    client: Any = (
        stdio_client(StdioServerParameters(command=script(name), env=env))
        if transport == "stdio"
        else streamable_http_client(url)
    )
    with anyio.fail_after(120):
        async with client as streams, ClientSession(streams[0], streams[1]) as session:
            await session.initialize()
            tools = (await session.list_tools()).tools
            calls = [call for tool in tools for call in _bad_calls(tool)]
            for call in calls:
                call.result = await session.call_tool(call.tool, call.arguments)
            health = await session.call_tool("health", {})
    return {"calls": calls, "health": health}


def _text(result: CallToolResult) -> str:
    return " ".join(c.text for c in result.content if isinstance(c, TextContent))


@pytest.mark.parametrize("transport", ["stdio", "http"])
@pytest.mark.parametrize("name", SERVERS)
def test_bad_arguments_give_a_clear_tool_error_and_the_server_goes_on(
    name: str,
    transport: str,
    servers: dict[tuple[str, str], RunningServer],
    env: dict[str, str],
) -> None:
    url = "" if transport == "stdio" else servers[(name, transport)].url
    got = anyio.run(_exercise, transport, name, url, env)
    assert not got["health"].is_error, "the server stopped serving after bad arguments"
    calls: list[BadCall] = got["calls"]
    if not calls:
        pytest.skip(f"pai-{name} has no tool with required parameters yet")
    for call in calls:
        assert call.result is not None
        text = _text(call.result)
        assert call.result.is_error, (call.tool, call.arguments, text)
        assert call.tool in text, text
        for field in call.fields:
            assert field in text, (call.tool, field, text)
        if not call.arguments:
            assert "required" in text.lower(), text
        else:
            assert "should be a valid" in text.lower(), text
