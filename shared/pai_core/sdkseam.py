"""Every touch of the MCP SDK's internals, in one place.

PAI relies on a few things the SDK does not promise: the tool manager it subclasses (and the
private ``_tools`` it reads), the manager and low-level server an ``MCPServer`` keeps
(``_tool_manager``, ``_lowlevel_server``), the ``configure_logging`` the server calls while it
is built, and, for the stdio front (:mod:`pai_core.fastfront`), how the SDK's runner shapes its
``initialize``, ``ping`` and ``tools/list`` answers (``ServerRunner._handle_initialize`` and
``ServerRunner._serialize``) and which protocol versions its handshake negotiates; for the
per-call path (:mod:`pai_core.fastcall`), the attributes of a ``Tool`` and its
``FuncMetadata`` that ``Tool.run`` reads (:data:`TOOL_ATTRIBUTES`), and the marks anyio gives
its own worker threads (``anyio.from_thread`` works in a sync tool).
``tests/shared/test_sdkseam.py`` checks each of them and names the one an upgrade moved; the
SDK pin in ``shared/pyproject.toml`` lists the minor versions checked.
"""

from __future__ import annotations

import contextlib
import contextvars
import sys
from collections.abc import Awaitable, Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from mcp.server import MCPServer
from mcp.server.mcpserver import server as _sdk_server
from mcp.server.mcpserver.tools.base import Tool
from mcp.server.mcpserver.tools.tool_manager import ToolManager
from mcp.server.mcpserver.utilities.func_metadata import FuncMetadata
from mcp.server.runner import ServerRunner
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, LATEST_HANDSHAKE_VERSION

from pai_core.fastfront import FORMAT, FRONT_FILE, key_state, read_json, source_key, write_json

__all__ = [
    "SDK_DISTRIBUTIONS",
    "TOOL_ATTRIBUTES",
    "Tool",
    "ToolManager",
    "built_tools",
    "convert_result",
    "dependency_files",
    "front_record",
    "lowlevel",
    "message_id",
    "package_roots",
    "pre_parse_json",
    "record_front_on_listing",
    "seam_problems",
    "set_tool_manager",
    "sdk_logging_replaced",
    "tool_arg_model",
    "tool_call",
    "tool_manager",
    "tool_output_model",
    "tool_plain",
    "worker_thread",
]

SDK_DISTRIBUTIONS = ("mcp", "mcp-types", "pydantic", "pydantic-core")
"""Distributions whose code shapes a cached answer: their metadata is part of its key."""

_SAMPLE_CLIENT = {"capabilities": {}, "clientInfo": {"name": "pai-front", "version": "0"}}


def built_tools(manager: ToolManager) -> dict[str, Tool]:
    """The tools a manager has built, by name (the SDK's private ``_tools``)."""
    tools: dict[str, Tool] = manager._tools
    return tools


def tool_manager(server: MCPServer[Any]) -> ToolManager:
    """The tool manager of ``server`` (the SDK's private ``_tool_manager``)."""
    manager: ToolManager = server._tool_manager
    return manager


def set_tool_manager(server: MCPServer[Any], manager: ToolManager) -> None:
    """Make ``manager`` the tool manager of ``server``."""
    server._tool_manager = manager


def lowlevel(server: MCPServer[Any]) -> Any:
    """The low-level ``Server`` an ``MCPServer`` runs (the SDK's private ``_lowlevel_server``)."""
    return server._lowlevel_server


@contextlib.contextmanager
def sdk_logging_replaced(stand_in: Callable[..., None]) -> Iterator[None]:
    """Within the block, ``MCPServer(...)`` calls ``stand_in`` instead of the SDK's
    ``configure_logging`` (which imports rich only to have its handler dropped)."""
    original = getattr(_sdk_server, "configure_logging", None)
    _sdk_server.configure_logging = stand_in  # type: ignore[attr-defined]
    try:
        yield
    finally:
        if original is not None:
            _sdk_server.configure_logging = original  # type: ignore[attr-defined]


def message_id(session_message: Any) -> Any:
    """The JSON-RPC id of an outgoing ``SessionMessage`` (None for a notification)."""
    return getattr(session_message.message, "id", None)


# ------------------------------------------------------------------ keys and the front's record


def package_roots(modules: list[str]) -> list[str]:
    """The directories (or files) of the top-level packages of ``modules``."""
    roots: set[str] = set()
    for name in modules:
        package = sys.modules.get(name.partition(".")[0])
        if package is None:
            continue
        paths = getattr(package, "__path__", None)
        if paths is not None:
            roots.update(str(Path(p)) for p in paths)
        elif package.__file__:
            roots.add(package.__file__)
    return sorted(roots)


def dependency_files() -> list[str]:
    """The installed metadata of :data:`SDK_DISTRIBUTIONS`: an upgrade replaces it."""
    found = []
    for name in SDK_DISTRIBUTIONS:
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        for entry in dist.files or []:
            if entry.name == "METADATA" and entry.parent.name.endswith(".dist-info"):
                found.append(str(Path(str(dist.locate_file(entry))).resolve()))
    return found


def _runner(server: MCPServer[Any]) -> ServerRunner[Any]:
    low = lowlevel(server)
    return ServerRunner(low, None, None, init_options=low.create_initialization_options())  # type: ignore[arg-type]


def front_record(server: MCPServer[Any], listing: Any, key: dict[str, Any]) -> dict[str, Any]:
    """The SDK's own answers to ``initialize``, ``ping`` and ``tools/list`` (``listing``, the
    result its handler returned) at every handshake protocol version, for the front."""
    runner = _runner(server)
    results: dict[str, dict[str, Any]] = {"initialize": {}, "ping": {}, "tools/list": {}}
    for version in HANDSHAKE_PROTOCOL_VERSIONS:
        init = runner._handle_initialize({"protocolVersion": version, **_SAMPLE_CLIENT})
        # initialize is shaped at the version the connection starts with, before it commits
        results["initialize"][version] = runner._serialize(
            "initialize", LATEST_HANDSHAKE_VERSION, init
        )
        results["ping"][version] = runner._serialize("ping", version, {})
        results["tools/list"][version] = runner._serialize("tools/list", version, listing)
    return {
        "format": FORMAT,
        "server": server.name.removeprefix("pai-"),
        "key": key,
        "versions": list(HANDSHAKE_PROTOCOL_VERSIONS),
        "latest": LATEST_HANDSHAKE_VERSION,
        "results": results,
    }


def record_front_on_listing(
    server: MCPServer[Any], cache_dir: Path, modules: Callable[[], list[str]]
) -> None:
    """After the SDK's first ``tools/list`` answer, write the front's record to
    ``cache_dir`` if it is missing or stale (so the next start gets the front)."""
    low = lowlevel(server)
    entry = low.get_request_handler("tools/list")
    if entry is None:
        return
    original: Callable[[Any, Any], Awaitable[Any]] = entry.handler
    done = False

    async def list_tools(ctx: Any, params: Any) -> Any:
        nonlocal done
        result = await original(ctx, params)
        if not done:
            done = True
            path = cache_dir / FRONT_FILE
            existing = read_json(path)
            if existing is None or key_state(existing.get("key")) != "fresh":
                key = source_key(package_roots(modules()), dependency_files())
                write_json(path, front_record(server, result, key))
        return result

    low.add_request_handler("tools/list", entry.params_type, list_tools)


# ------------------------------------------------------------------ one tool call (fastcall)

TOOL_ATTRIBUTES = {
    "Tool": ("fn", "name", "fn_metadata", "is_async", "context_kwarg", "resolved_params", "run"),
    "FuncMetadata": ("arg_model", "output_schema", "output_model", "wrap_output"),
    "FuncMetadata methods": ("pre_parse_json", "convert_result"),
}
"""What :mod:`pai_core.fastcall` reads of the SDK's ``Tool`` and ``FuncMetadata``."""


def tool_call(tool: Tool) -> tuple[Callable[..., Any], bool, str | None]:
    """The function a call runs, whether it is async, and the keyword its context goes to
    (read at every call: the SDK reads them live)."""
    return tool.fn, tool.is_async, tool.context_kwarg


def tool_plain(tool: Tool) -> bool:
    """Whether ``Tool.run`` itself runs the tool, with no resolvers and no ``{"result": ...}``
    wrapping of its output (only such a call is made outside ``Tool.run``)."""
    return type(tool).run is Tool.run and not tool.resolved_params and not _meta(tool).wrap_output


def tool_arg_model(tool: Tool) -> Any:
    """The model the arguments are validated with."""
    return _meta(tool).arg_model


def tool_output_model(tool: Tool) -> Any:
    """The model the result is serialised from, or None where the tool has no output schema."""
    metadata = _meta(tool)
    return metadata.output_model if metadata.output_schema is not None else None


def pre_parse_json(tool: Tool, arguments: dict[str, Any]) -> dict[str, Any]:
    """The arguments with JSON strings parsed where a field is not a string, as the SDK does."""
    parsed: dict[str, Any] = _meta(tool).pre_parse_json(arguments)
    return parsed


def convert_result(tool: Tool, result: Any) -> Any:
    """The ``CallToolResult`` the SDK makes of ``result``."""
    return _meta(tool).convert_result(result)


def _meta(tool: Tool) -> FuncMetadata:
    return tool.fn_metadata


@contextlib.contextmanager
def worker_thread(token: Any) -> Iterator[None]:
    """Within the block, the current thread is an anyio worker thread of the event loop
    ``token`` (``anyio.lowlevel.current_token()``) names, as ``anyio.to_thread`` marks its own:
    ``anyio.from_thread.run`` finds its way back to that loop."""
    from anyio._core._eventloop import threadlocals

    threadlocals.current_token = token
    try:
        yield
    finally:
        del threadlocals.current_token


def no_async_library(context: contextvars.Context) -> None:
    """In ``context``, no async library runs (sniffio's answer, where sniffio is installed), as
    ``anyio.to_thread`` sets it for the code its worker threads run."""
    from anyio._core._eventloop import set_current_async_library

    context.run(set_current_async_library, None)


def set_worker_cancel_scope(scope: Any) -> None:
    """What ``anyio.from_thread.check_cancelled`` in this worker thread checks: ``scope``, the
    caller's scope outside the shield the call waits in (as ``anyio.to_thread`` sets it)."""
    from anyio._core._eventloop import threadlocals

    threadlocals.current_cancel_scope = getattr(scope, "_parent_scope", None) or scope


def clear_worker_cancel_scope() -> None:
    from anyio._core._eventloop import threadlocals

    threadlocals.__dict__.pop("current_cancel_scope", None)


def seam_problems() -> list[str]:
    """The SDK (and anyio) attributes the per-call path relies on that are gone."""
    problems = [
        f"Tool.{a}"
        for a in TOOL_ATTRIBUTES["Tool"]
        if a not in Tool.model_fields and not hasattr(Tool, a)
    ]
    problems += [
        f"FuncMetadata.{a}"
        for a in TOOL_ATTRIBUTES["FuncMetadata"]
        if a not in FuncMetadata.model_fields
    ]
    problems += [
        f"FuncMetadata.{a}"
        for a in TOOL_ATTRIBUTES["FuncMetadata methods"]
        if not callable(getattr(FuncMetadata, a, None))
    ]
    try:
        from anyio._core._eventloop import threadlocals
    except ImportError:
        problems.append("anyio._core._eventloop.threadlocals")
    else:
        if not hasattr(threadlocals, "__dict__"):
            problems.append("anyio._core._eventloop.threadlocals")
    try:
        from anyio._core._eventloop import set_current_async_library  # noqa: F401
    except ImportError:
        problems.append("anyio._core._eventloop.set_current_async_library")
    return problems
