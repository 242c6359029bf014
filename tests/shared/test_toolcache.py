"""Tools are built when first needed and listed from a cache that follows the code: the
listing is the SDK's own, a call works before any listing, and a change rebuilds it."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from pai_core import annotations as ann
from pai_core.app import create_server, tool
from pai_core.settings import ServerSettings, load_settings
from pai_core.spec import discover_servers
from pai_core.toolcache import LazyToolManager
from tests.conftest import SERVERS


def _listing(server: Any) -> list[dict[str, Any]]:
    return [t.model_dump() for t in asyncio.run(server.list_tools())]


@pytest.mark.parametrize("name", SERVERS)
def test_every_server_lists_the_same_tools_from_the_cache(name: str, tmp_path: Path) -> None:
    spec = discover_servers()[name]
    settings = load_settings(spec.settings_cls(), None, data_dir=tmp_path / name)
    first = spec.build(settings)
    built = _listing(first)  # nothing cached yet: the SDK builds every tool
    assert (tmp_path / name / "cache" / "tools.json").is_file()
    again = spec.build(settings)
    manager = again._tool_manager
    assert isinstance(manager, LazyToolManager)
    assert _listing(again) == built
    assert manager._tools == {}  # listed without building a single tool


def _probe(data_dir: Path) -> Any:
    server = create_server(
        "probe", version="1", instructions="t", settings=ServerSettings(data_dir=data_dir)
    )

    @tool(server, ann.READ_ONLY)
    def double(value: int) -> int:
        """Twice the value."""
        return 2 * value

    @tool(server, ann.READ_ONLY)
    def other() -> str:
        """Another tool."""
        return "x"

    return server


def test_a_tool_is_built_on_its_first_call_only(tmp_path: Path) -> None:
    server = _probe(tmp_path)

    async def run() -> None:
        ok = await server.call_tool("double", {"value": 21})
        assert ok.structured_content == {"result": 42}
        assert set(server._tool_manager._tools) == {"double"}  # "other" is not built
        async with Client(server) as client:  # a real session lists, then calls
            assert [t.name for t in (await client.list_tools()).tools] == ["double", "other"]
            bad = await client.call_tool("double", {"value": "many"})
            assert bad.is_error and "value" in str(bad.content)
            assert (await client.call_tool("other", {})).structured_content == {"result": "x"}

    anyio.run(run)


def test_a_broken_or_unwritable_cache_only_costs_a_rebuild(tmp_path: Path) -> None:
    reference = _listing(_probe(tmp_path / "a"))
    cache = tmp_path / "a" / "cache" / "tools.json"
    cache.write_text('{"format": ')  # cut short
    assert _listing(_probe(tmp_path / "a")) == reference
    assert json.loads(cache.read_text())["tools"].keys() == {"double", "other"}
    cache.write_text(json.dumps({"format": 2, "key": {"python": "another"}, "tools": {}}))
    assert _listing(_probe(tmp_path / "a")) == reference
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the data directory should be")
    assert _listing(_probe(blocked)) == reference  # nothing can be written there


def test_duplicates_and_removal_behave_as_in_the_sdk(tmp_path: Path) -> None:
    server = _probe(tmp_path)
    server._tool_manager.add_tool(lambda: 1, name="double")  # kept: the first one wins
    assert server._tool_manager.get_tool("double").fn.__name__ == "double"
    server.remove_tool("other")
    assert [t["name"] for t in _listing(server)] == ["double"]
    with pytest.raises(Exception, match="Unknown tool"):
        server.remove_tool("other")


MODULE = '''
from pai_core import annotations as ann
from pai_core.app import create_server, tool
from pai_core.settings import ServerSettings


def build(data_dir):
    server = create_server("probe", version="1", instructions="t",
                           settings=ServerSettings(data_dir=data_dir))

    @tool(server, ann.READ_ONLY)
    def greet(name: str{extra}) -> str:
        """Say hello."""
        return name

    return server
'''

RUN = """
import asyncio, json, sys
sys.path.insert(0, sys.argv[1])
from probe_tools import build
server = build(sys.argv[2])
tools = asyncio.run(server.list_tools())
print(json.dumps([sorted(tools[0].input_schema["properties"]), len(server._tool_manager._tools)]))
"""


def test_a_change_to_the_code_rebuilds_the_listing(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    module = source / "probe_tools.py"

    def listed() -> list[Any]:
        out = subprocess.run(
            [sys.executable, "-c", RUN, str(source), str(tmp_path / "data")],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return list(json.loads(out.stdout.strip().splitlines()[-1]))

    module.write_text(textwrap.dedent(MODULE).format(extra=""))
    assert listed() == [["name"], 1]  # built, then cached
    assert listed() == [["name"], 0]  # from the cache
    module.write_text(textwrap.dedent(MODULE).format(extra=", times: int = 1"))
    assert listed() == [["name", "times"], 1]  # the new signature, not the cached one
