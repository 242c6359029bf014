"""Each SDK internal PAI relies on (pai_core.sdkseam) is still where it was: an upgrade that
moves one fails here, naming it, before it breaks a server."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest

from pai_core import sdkseam
from pai_core.app import create_server
from pai_core.settings import ServerSettings


def _internal(owner: Any, name: str, where: str) -> Any:
    value = getattr(owner, name, inspect.Parameter.empty)
    assert value is not inspect.Parameter.empty, (
        f"SDK internal moved: {where}.{name} is gone; update pai_core.sdkseam and the SDK pin"
    )
    return value


@pytest.fixture
def server(tmp_path: Path) -> Any:
    return create_server(
        "seam", version="1", instructions="t", settings=ServerSettings(data_dir=tmp_path)
    )


def test_tool_manager_internals() -> None:
    manager = sdkseam.ToolManager()
    tools = _internal(manager, "_tools", "ToolManager")
    assert isinstance(tools, dict), "SDK internal changed: ToolManager._tools is not a dict"
    assert sdkseam.built_tools(manager) is tools
    for method in ("add_tool", "get_tool", "list_tools", "remove_tool", "call_tool"):
        _internal(manager, method, "ToolManager")
    params = inspect.signature(sdkseam.Tool.from_function).parameters
    for option in ("name", "title", "description", "annotations", "icons", "meta"):
        assert option in params, f"SDK internal changed: Tool.from_function lost {option!r}"


def test_server_internals(server: Any) -> None:
    manager = _internal(server, "_tool_manager", "MCPServer")
    assert isinstance(manager, sdkseam.ToolManager)
    low = _internal(server, "_lowlevel_server", "MCPServer")
    for method in ("add_request_handler", "get_request_handler", "create_initialization_options"):
        _internal(low, method, "lowlevel Server")
    entry = low.get_request_handler("tools/list")
    assert entry is not None, "SDK internal moved: no lowlevel handler for tools/list"
    _internal(entry, "handler", "HandlerEntry")
    _internal(entry, "params_type", "HandlerEntry")


def test_configure_logging_is_still_called_while_a_server_is_built() -> None:
    from mcp.server import MCPServer
    from mcp.server.mcpserver import server as module

    _internal(module, "configure_logging", "mcp.server.mcpserver.server")
    calls: list[Any] = []
    with sdkseam.sdk_logging_replaced(lambda *a, **k: calls.append(a)):
        MCPServer("probe")
    assert calls, "SDK internal moved: MCPServer() no longer calls configure_logging"


def test_runner_answers_the_front_records(server: Any) -> None:
    from mcp.server.runner import ServerRunner
    from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, LATEST_HANDSHAKE_VERSION

    _internal(ServerRunner, "_handle_initialize", "ServerRunner")
    _internal(ServerRunner, "_serialize", "ServerRunner")
    assert LATEST_HANDSHAKE_VERSION in HANDSHAKE_PROTOCOL_VERSIONS
    record = sdkseam.front_record(server, {"tools": []}, {"roots": []})
    assert record["versions"] == list(HANDSHAKE_PROTOCOL_VERSIONS)
    for version in HANDSHAKE_PROTOCOL_VERSIONS:
        init = record["results"]["initialize"][version]
        assert init["protocolVersion"] == version, "SDK internal changed: version negotiation"
        assert init["serverInfo"]["name"] == "pai-seam"
        assert init["instructions"] == "t"
        assert "logging" in init["capabilities"]
        assert record["results"]["ping"][version] == {}
        assert record["results"]["tools/list"][version] == {"tools": []}
    # the front's rule for a version the SDK does not speak: its latest handshake version
    unsupported = sdkseam._runner(server)._handle_initialize(
        {"protocolVersion": "1999-01-01", **sdkseam._SAMPLE_CLIENT}
    )
    assert unsupported.protocol_version == LATEST_HANDSHAKE_VERSION


def test_outgoing_messages_carry_their_id() -> None:
    from mcp.shared.message import SessionMessage
    from mcp.types import JSONRPCResponse

    message = SessionMessage(JSONRPCResponse(jsonrpc="2.0", id="pai-front-1", result={}))
    assert sdkseam.message_id(message) == "pai-front-1", "SDK internal moved: message.id"


def test_the_key_covers_the_sdk_and_pydantic_metadata() -> None:
    files = sdkseam.dependency_files()
    names = {Path(f).parent.name.split("-")[0].lower() for f in files}
    assert {"mcp", "mcp_types", "pydantic", "pydantic_core"} <= names, files


def test_the_sdk_still_has_what_a_tool_call_reads() -> None:
    # An SDK (or anyio) upgrade that renames one of these fails here, naming it.
    assert sdkseam.seam_problems() == []
    tool = sdkseam.Tool.from_function(lambda word: {"word": word}, name="probe")
    fn, is_async, context_kwarg = sdkseam.tool_call(tool)
    assert fn(word="w") == {"word": "w"} and not is_async and context_kwarg is None
    assert sdkseam.tool_plain(tool)
    assert sdkseam.tool_arg_model(tool).model_validate({"word": "w"}).word == "w"
    assert sdkseam.tool_output_model(tool) is None


def test_anyio_worker_marks_are_where_they_were() -> None:
    import anyio
    import anyio.from_thread
    import anyio.lowlevel

    async def back() -> str:
        return "loop"

    async def main() -> list[str]:
        token = anyio.lowlevel.current_token()
        seen: list[str] = []
        with anyio.CancelScope() as outer:
            with anyio.CancelScope(shield=True) as shield:
                _internal(shield, "_parent_scope", "anyio CancelScope")

                def in_thread() -> None:
                    with sdkseam.worker_thread(token):
                        seen.append(anyio.from_thread.run(back))
                        sdkseam.set_worker_cancel_scope(shield)
                        anyio.from_thread.check_cancelled()
                        seen.append("not cancelled")
                        anyio.from_thread.run_sync(outer.cancel)
                        try:
                            anyio.from_thread.check_cancelled()
                        except BaseException as exc:
                            seen.append(type(exc).__name__)
                        sdkseam.clear_worker_cancel_scope()

                import threading

                thread = threading.Thread(target=in_thread)
                thread.start()
                while thread.is_alive():
                    await anyio.sleep(0.001)
        return seen

    assert anyio.run(main) == ["loop", "not cancelled", "CancelledError"], (
        "anyio internal moved: its worker-thread marks (threadlocals)"
    )
