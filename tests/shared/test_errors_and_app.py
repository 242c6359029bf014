"""The error hierarchy and its mapping onto what the model reads."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import anyio
import pytest
from mcp import Client
from mcp.types import CallToolResult, TextContent
from pydantic import BaseModel, Field

from pai_core import annotations as ann
from pai_core.app import add_health_tool, create_server, tool
from pai_core.errors import (
    BackendUnavailable,
    Conflict,
    InvalidInput,
    MissingDependency,
    NotFound,
    PaiError,
    PolicyDenied,
    VerificationFailed,
)
from pai_core.log import register_secret
from pai_core.settings import ServerSettings

SECRET = "s3cr3t-value-of-the-backend"
register_secret(SECRET)


def _first(result: CallToolResult) -> str:
    """The text of a result's first content block."""
    block = result.content[0]
    assert isinstance(block, TextContent), block
    return block.text


def test_message_carries_context_and_next_step() -> None:
    err = InvalidInput("name is empty", field="name")
    text = str(err)
    assert "name is empty" in text
    assert "field='name'" in text
    assert "nothing was changed" in text
    assert err.to_dict()["error"] == "InvalidInput"


def test_explicit_hint_replaces_default() -> None:
    assert str(NotFound("no fact f1", hint="List facts first.")).endswith("List facts first.")


def test_missing_dependency_names_the_extra() -> None:
    err = MissingDependency("embeddings unavailable", extra="embeddings", package="pai-membrane")
    assert "pip install 'pai-membrane[embeddings]'" in str(err)


@pytest.mark.parametrize(
    "cls", [InvalidInput, NotFound, Conflict, PolicyDenied, BackendUnavailable, VerificationFailed]
)
def test_every_error_is_a_pai_error_with_a_hint(cls: type[PaiError]) -> None:
    err = cls("boom")
    assert isinstance(err, PaiError)
    assert err.hint


class Echo(BaseModel):
    value: int


def _server() -> object:
    settings = ServerSettings()
    server = create_server("probe", version="9.9", instructions="test", settings=settings)

    @tool(server, ann.READ_ONLY)
    def echo(value: Annotated[int, Field(description="a number", ge=0)]) -> Echo:
        """Echo a number."""
        if value == 13:
            raise PolicyDenied("13 is not allowed", rule="no-13")
        if value == 7:
            raise RuntimeError(f"backend said password={SECRET} and token {SECRET}")
        return Echo(value=value)

    @tool(server, ann.MUTATING)
    def store(
        path: Annotated[str, Field(description="where")],
        mode: Annotated[Literal["a", "b"], Field(description="how")] = "a",
        ttl: Annotated[int | None, Field(description="seconds")] = None,
    ) -> Echo:
        """Store something at a path."""
        with open(Path("/tmp") / path / "x"):  # ENAMETOOLONG for a long path
            pass
        return Echo(value=0)

    @tool(server, ann.READ_ONLY)
    def wrong_result() -> Echo:
        """Return something that is not an Echo."""
        return "not an echo"  # type: ignore[return-value]

    @tool(server, ann.DESTRUCTIVE)
    async def wipe(target: str) -> str:
        """Wipe something."""
        raise NotFound(f"no target {target}")

    add_health_tool(
        server,
        version="9.9",
        settings=settings,
        probe=lambda: {"backend": "memory", "configured": True},
    )
    return server


def test_tools_through_a_real_client_session() -> None:
    async def run() -> None:
        async with Client(_server()) as client:  # type: ignore[arg-type]
            tools = {t.name: t for t in (await client.list_tools()).tools}
            assert set(tools) == {"echo", "wipe", "store", "wrong_result", "health"}
            echo, wipe = tools["echo"].annotations, tools["wipe"].annotations
            assert echo is not None and echo.read_only_hint is True
            assert wipe is not None and wipe.destructive_hint is True
            assert tools["echo"].output_schema is not None

            ok = await client.call_tool("echo", {"value": 3})
            assert not ok.is_error and ok.structured_content == {"value": 3}

            denied = await client.call_tool("echo", {"value": 13})
            assert denied.is_error
            assert "PolicyDenied: 13 is not allowed" in _first(denied)
            assert "rule='no-13'" in _first(denied)

            crash = await client.call_tool("echo", {"value": 7})
            assert crash.is_error
            text = _first(crash)
            assert text.startswith("UnexpectedError: echo failed"), text
            assert "RuntimeError" in text and "nothing was changed" in text
            assert SECRET not in text

            bad = await client.call_tool("echo", {"value": -1})
            assert bad.is_error and "value" in _first(bad)

            missing = await client.call_tool("wipe", {"target": "x"})
            assert missing.is_error and "NotFound: no target x" in _first(missing)

            health = await client.call_tool("health", {})
            assert health.structured_content["status"] == "ok"
            assert health.structured_content["server"] == "probe"
            assert health.structured_content["version"] == "9.9"

            # the server still serves after every failure above
            again = await client.call_tool("echo", {"value": 4})
            assert again.structured_content == {"value": 4}

    anyio.run(run)


def _texts(calls: dict[str, tuple[str, dict[str, object]]]) -> dict[str, str]:
    async def run() -> dict[str, str]:
        out = {}
        async with Client(_server()) as client:  # type: ignore[arg-type]
            for key, (name, args) in calls.items():
                result = await client.call_tool(name, args)
                assert result.is_error, (key, result)
                out[key] = _first(result)
        return out

    return anyio.run(run)


def test_an_unexpected_exception_is_readable_names_its_argument_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    long_path = "p" * 300
    got = _texts({"long": ("store", {"path": long_path})})["long"]
    assert got.startswith("UnexpectedError: store failed on argument 'path': OSError"), got
    assert "File name too long" in got and "nothing was changed" in got
    assert long_path not in got and len(got) < 600  # the value is not echoed back
    assert "Error executing tool" not in got
    logged = [r for r in caplog.records if r.name == "pai_core.app" and r.exc_info]
    assert logged and "File name too long" in str(logged[0].exc_info[1])  # type: ignore[index]


def test_arguments_the_sdk_rejects_read_like_pai_errors() -> None:
    got = _texts(
        {
            "ttl": ("store", {"path": "x", "ttl": "abc"}),
            "enum": ("store", {"path": "x", "mode": "zap"}),
            "missing": ("store", {}),
            "unknown": ("no_such_tool", {}),
        }
    )
    for key, text in got.items():
        assert "Error executing tool" not in text, (key, text)
        assert "errors.pydantic.dev" not in text and "Arguments" not in text, (key, text)
    assert got["ttl"].startswith("InvalidInput: ttl: Input should be a valid integer"), got
    assert got["enum"].startswith("InvalidInput: mode: Input should be 'a' or 'b'"), got
    assert got["missing"].startswith("InvalidInput: path: required"), got
    assert all("nothing was changed" in got[k] for k in ("ttl", "enum", "missing"))
    assert got["unknown"].startswith("NotFound: no tool named 'no_such_tool'"), got


def test_a_result_that_breaks_the_output_schema_does_not_claim_nothing_changed() -> None:
    got = _texts({"r": ("wrong_result", {})})["r"]
    assert got.startswith("UnexpectedError: wrong_result ran, but its result"), got
    assert "nothing was changed" not in got
