"""The error hierarchy and its mapping onto what the model reads."""

from __future__ import annotations

from typing import Annotated

import anyio
import pytest
from mcp import Client
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
from pai_core.settings import ServerSettings


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
            raise RuntimeError("internal detail that must not leak")
        return Echo(value=value)

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
            assert set(tools) == {"echo", "wipe", "health"}
            assert tools["echo"].annotations.read_only_hint is True
            assert tools["wipe"].annotations.destructive_hint is True
            assert tools["echo"].output_schema is not None

            ok = await client.call_tool("echo", {"value": 3})
            assert not ok.is_error and ok.structured_content == {"value": 3}

            denied = await client.call_tool("echo", {"value": 13})
            assert denied.is_error
            assert "PolicyDenied: 13 is not allowed" in denied.content[0].text
            assert "rule='no-13'" in denied.content[0].text

            crash = await client.call_tool("echo", {"value": 7})
            assert crash.is_error
            assert "internal detail" not in crash.content[0].text

            bad = await client.call_tool("echo", {"value": -1})
            assert bad.is_error and "value" in bad.content[0].text

            missing = await client.call_tool("wipe", {"target": "x"})
            assert missing.is_error and "NotFound: no target x" in missing.content[0].text

            health = await client.call_tool("health", {})
            assert health.structured_content["status"] == "ok"
            assert health.structured_content["server"] == "probe"
            assert health.structured_content["version"] == "9.9"

            # the server still serves after every failure above
            again = await client.call_tool("echo", {"value": 4})
            assert again.structured_content == {"value": 4}

    anyio.run(run)
