"""A generated bad-input sweep over every tool of every installed server.

The servers are found the way ``pai`` finds them (entry points ``pai.servers``) and their tools
by ``tools/list``, so a new server or tool is swept the day it lands. For each tool, hypothesis
draws argument objects from the tool's own ``inputSchema``: values of the declared shape mixed
with hostile ones (wrong JSON types, 100 kB strings, NUL and right-to-left override characters,
paths that climb out, far-away dates, 20-digit numbers, NaN, lists nested 200 deep), required
fields dropped and unknown ones added. The examples are derandomized (the same every run) and
bounded per tool. Every call must come back within a deadline, as a result or as an ``isError``
whose text has PAI's shape (``<Kind>: …``): never the SDK's bare ``Error executing tool``,
never a traceback. ``health`` must still answer after the sweep.

Each server runs in this process, talking to the SDK client over memory streams, with settings
that keep every call on this machine: private data and audit paths, embeddings off, no browser
binary, no nft binary, verify allowed only 127.0.0.1, and nothing configured for DNS, GitLab,
mail or GPU workers. Failures inside a tool that are defects, not bad input, read
``UnexpectedError: …`` (readable, logged with their traceback); the sweep lists them in the
test's output so they can be fixed, and fails only on unreadable answers and hangs.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client
from mcp.types import CallToolResult, TextContent

from pai_core.settings import load_settings
from pai_core.spec import ServerSpec, discover_servers

EXAMPLES_PER_TOOL = 10
CALL_DEADLINE_S = 30
PAI_SHAPE = re.compile(r"^[A-Z][A-Za-z]+: \S")

# Settings that keep every call local and cheap; a field a server does not have is skipped.
SAFE_SETTINGS: dict[str, Any] = {
    "embeddings": False,
    "chromium_path": "/nonexistent/chromium",
    "nft_binary": "/nonexistent/nft",
    "ip_binary": "/nonexistent/ip",
    "allow_hosts": ["127.0.0.1"],
    "remember": False,
}
# A server configured far enough that its input parsing runs (its backend is a closed port).
CONFIGURED: dict[str, dict[str, Any]] = {
    "dns": {
        "zones": ["example.test"],
        "server": "127.0.0.1",
        "port": 1,
        "tsig_key_name": "pai-key",
        "tsig_secret": "c2VjcmV0LWZvci10aGUtc3dlZXA=",
        "timeout_s": 0.5,
        "verify_timeout_s": 0.5,
    },
}

HOSTILE_STRINGS = [
    "",
    " ",
    "\x00",
    "nul\x00inside",
    "\u202eevil\u200b",
    "a" * 100_000,
    "../../../../etc/passwd",
    "/" + "d" * 300,
    ".",
    "99999 years ago",
    "in 99999 years",
    "9999-12-31T23:59:59-23:59",
    "0001-01-01T00:00:00+23:59",
    "1" * 20,
    "NaN",
    "{not json",
    "SELECT * FROM x; --",
    "http://127.0.0.1:1/" + "x" * 5000,
]
HOSTILE_NUMBERS: list[Any] = [-1, 0, 2**63, -(2**63) - 1, 10**20, 1e308, -1e308, math.nan]
DEEP: Any = json.loads("[" * 200 + "]" * 200)
HOSTILE_ANY: list[Any] = [
    None,
    True,
    {},
    [],
    {"nested": {"deeper": [1, {"x": None}]}},
    DEEP,
    *HOSTILE_NUMBERS,
    *HOSTILE_STRINGS[:8],
]


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        node: Any = root
        for part in ref[2:].split("/"):
            node = node.get(part, {})
        return dict(node)
    return schema


def _value(schema: dict[str, Any], root: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
    """Values for ``schema``: mostly of its shape, often hostile."""
    schema = _resolve(schema, root)
    hostile = st.sampled_from(HOSTILE_ANY)
    if depth > 3:
        return hostile
    options = schema.get("anyOf") or schema.get("oneOf")
    if options:
        shaped = st.one_of([_value(o, root, depth + 1) for o in options])
    elif "enum" in schema:
        shaped = st.sampled_from(schema["enum"]) | st.sampled_from(HOSTILE_STRINGS)
    else:
        kind = schema.get("type")
        if kind == "string":
            shaped = st.text(max_size=20) | st.sampled_from(HOSTILE_STRINGS)
        elif kind == "integer":
            shaped = st.integers(-(10**6), 10**6) | st.sampled_from(HOSTILE_NUMBERS)
        elif kind == "number":
            shaped = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(
                HOSTILE_NUMBERS
            )
        elif kind == "boolean":
            shaped = st.booleans()
        elif kind == "array":
            items = schema.get("items", {})
            shaped = st.lists(_value(items, root, depth + 1), max_size=3) | st.just([""] * 2000)
        elif kind == "object" or "properties" in schema:
            shaped = _object(schema, root, depth + 1)
        else:
            shaped = hostile
    return st.one_of(shaped, shaped, hostile)


def _object(schema: dict[str, Any], root: dict[str, Any], depth: int) -> st.SearchStrategy[Any]:
    props: dict[str, Any] = schema.get("properties", {})
    required = [p for p in schema.get("required", []) if p in props]
    optional = {k: _value(v, root, depth) for k, v in props.items() if k not in required}
    whole = st.fixed_dictionaries(
        {k: _value(props[k], root, depth) for k in required}, optional=optional
    )

    def damage(args: dict[str, Any], drop: bool, extra: bool) -> dict[str, Any]:
        args = dict(args)
        if drop and required:
            args.pop(required[0], None)
        if extra:
            args["unexpected_field"] = "x"
        return args

    return st.builds(damage, whole, st.booleans(), st.booleans())


def _arguments(schema: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    return _object(schema, schema, 0)


def _text(result: CallToolResult) -> str:
    return " ".join(c.text for c in result.content if isinstance(c, TextContent))


@contextmanager
def _client(spec: ServerSpec, data: Path) -> Iterator[tuple[BlockingPortal, Client]]:
    cls = spec.settings_cls()
    fields = cls.model_fields
    overrides = {k: v for k, v in SAFE_SETTINGS.items() if k in fields}
    overrides.update(CONFIGURED.get(spec.name, {}))
    overrides.update(data_dir=data / "data", audit_log=data / "audit.jsonl")
    settings_ = load_settings(cls, data / "none.toml", **overrides)
    server = spec.build(settings_)
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(Client(server)) as client,
    ):
        yield portal, client


SPECS = discover_servers()


@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_tool_answers_generated_bad_input_readably(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    defects: dict[str, str] = {}
    with _client(SPECS[name], tmp_path) as (portal, client):
        tools = portal.call(client.list_tools).tools
        assert tools, f"pai-{name} lists no tools"

        async def call(tool: str, args: dict[str, Any]) -> CallToolResult:
            with anyio.fail_after(CALL_DEADLINE_S):
                return await client.call_tool(tool, args)

        for tool in tools:
            if tool.name == "health":
                continue

            @settings(
                max_examples=EXAMPLES_PER_TOOL,
                derandomize=True,
                database=None,
                deadline=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(args=_arguments(tool.input_schema), tool_name=st.just(tool.name))
            def sweep(args: dict[str, Any], tool_name: str) -> None:
                try:
                    result = portal.call(call, tool_name, args)
                except TimeoutError:
                    pytest.fail(f"{tool_name} gave no answer within {CALL_DEADLINE_S} s")
                if not result.is_error:
                    return
                text = _text(result)
                assert PAI_SHAPE.match(text), (tool_name, text[:500])
                assert "Error executing tool" not in text, (tool_name, text[:500])
                assert "Traceback" not in text, (tool_name, text[:500])
                if text.startswith("UnexpectedError:"):
                    defects.setdefault(tool_name, text[:300])

            sweep()
        health = portal.call(call, "health", {})
        assert not health.is_error, _text(health)
    with capsys.disabled():
        for tool_name, text in sorted(defects.items()):
            print(f"\n  defect found by the sweep in pai-{name} {tool_name}: {text}")
