"""pai_core.fastcall makes a call exactly as the SDK's Tool.run does: same result, same errors."""

from __future__ import annotations

import contextvars
import functools
import gc
import threading
import warnings
from pathlib import Path
from typing import Annotated, Any

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
import pytest
import sniffio
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools.base import Tool
from mcp.types import CallToolResult, ImageContent, TextContent
from pydantic import BaseModel, ConfigDict, Field

from pai_core import fastcall, sdkseam
from pai_core.annotations import READ_ONLY
from pai_core.app import create_server, tool
from pai_core.errors import InvalidInput
from pai_core.settings import ServerSettings


class Item(BaseModel):
    name: str
    size: float
    tags: list[str] = []


class Out(BaseModel):
    title: str
    count: int
    items: list[Item]
    extra: dict[str, Any] = Field(default_factory=dict)
    ratio: float | None = None


class Aliased(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    kind: str = Field(alias="type")


class Sub(Out):
    more: str = "x"


class Strict(BaseModel):
    model_config = ConfigDict(revalidate_instances="always")
    value: int


def listing(
    title: Annotated[str, Field(min_length=1)],
    sizes: list[float],
    tags: dict[str, str] | None = None,
    limit: Annotated[int, Field(ge=1, le=10)] = 3,
) -> Out:
    """A model result built from the arguments."""
    items = [Item(name=f"n{i}é", size=s, tags=sorted(tags or {})) for i, s in enumerate(sizes)]
    return Out(title=title, count=len(items[:limit]), items=items[:limit], extra={"k": [1, 2.5]})


async def async_listing(title: str, ctx: Context) -> Out:
    """An async tool taking the context."""
    assert ctx is not None
    return Out(title=title, count=0, items=[], ratio=float("inf"))


def as_dict(title: str) -> Out:
    return {"title": title, "count": 1, "items": []}  # type: ignore[return-value]


def as_subclass(title: str) -> Out:
    return Sub(title=title, count=0, items=[])


def aliased(kind: str) -> Aliased:
    return Aliased(kind=kind)


def strict(value: int) -> Strict:
    return Strict(value=value)


def text(word: str) -> str:
    return word * 2


def untyped(word):  # no annotations: no output schema
    return {"word": word}


def image() -> ImageContent:
    return ImageContent(type="image", data="AAAA", mime_type="image/png")


def unstructured(n: int) -> list[dict[str, int]]:
    return [{"i": i} for i in range(n)]


def wrapped(n: int) -> list[int]:
    return list(range(n))


def raw_result(n: int) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=str(n))])


def fails_anticipated(word: str) -> Out:
    raise ToolError(f"InvalidInput: {word}")


def fails_pai(word: str) -> Out:
    raise InvalidInput(f"bad {word}")


def crashes(word: str) -> Out:
    raise RuntimeError(f"boom {word}")


def wrong_type(word: str) -> Item:
    return Out(title=word, count=0, items=[])  # type: ignore[return-value]


CASES: list[tuple[Any, dict[str, Any]]] = [
    (listing, {"title": "t", "sizes": [1, 2.5, 1e-7], "tags": {"b": "1", "a": "2"}}),
    (listing, {"title": "t", "sizes": "[1, 2]", "tags": '{"x": "y"}', "limit": "2"}),
    (listing, {"title": "t", "sizes": "not json"}),
    (listing, {"title": "", "sizes": [1], "limit": 99, "unknown": 1}),
    (listing, {}),
    (async_listing, {"title": "a"}),
    (as_dict, {"title": "d"}),
    (as_subclass, {"title": "s"}),
    (aliased, {"kind": "k"}),
    (strict, {"value": 3}),
    (text, {"word": "ab"}),
    (untyped, {"word": "u"}),
    (image, {}),
    (unstructured, {"n": 2}),
    (wrapped, {"n": 3}),
    (raw_result, {"n": 1}),
    (fails_anticipated, {"word": "w"}),
    (fails_pai, {"word": "w"}),
    (crashes, {"word": "w"}),
    (wrong_type, {"word": "w"}),
]


async def outcome(call: Any) -> tuple[str, Any]:
    try:
        result = await call
    except Exception as exc:
        cause = exc.__cause__
        return "raised", (type(exc).__name__, str(exc), type(cause).__name__, str(cause))
    if isinstance(result, BaseModel):
        return "result", (type(result).__name__, result.model_dump(mode="json", by_alias=True))
    return "value", result


@pytest.mark.parametrize(("fn", "arguments"), CASES, ids=[f.__name__ for f, _ in CASES])
@pytest.mark.parametrize("convert", [True, False])
def test_same_result_and_errors_as_tool_run(
    fn: Any, arguments: dict[str, Any], convert: bool
) -> None:
    tool = Tool.from_function(fn, structured_output=None if fn is not wrapped else True)
    ctx = Context()

    async def both() -> tuple[Any, Any]:
        sdk = await outcome(tool.run(dict(arguments), ctx, convert_result=convert))
        ours = await outcome(fastcall.run(tool, dict(arguments), ctx, convert))
        return sdk, ours

    sdk, ours = anyio.run(both)
    assert ours == sdk


def test_plain_model_tools_take_the_planned_path_and_the_rest_go_to_tool_run() -> None:
    assert fastcall.plan_for(Tool.from_function(listing)) is not None
    assert fastcall.plan_for(Tool.from_function(untyped)) is not None
    assert fastcall.plan_for(Tool.from_function(text)) is None  # wrapped as {"result": ...}
    assert fastcall.plan_for(Tool.from_function(strict)) is None  # revalidates instances
    assert fastcall.plan_for(Tool.from_function(wrapped, structured_output=True)) is None


def test_a_reassigned_output_model_takes_effect_and_plans_go_with_their_tools() -> None:
    tool = Tool.from_function(listing)
    first = fastcall.plan_for(tool)
    assert first is not None and first.output_model is Out
    tool.fn_metadata.output_model = Sub
    second = fastcall.plan_for(tool)
    assert second is not None and second.output_model is Sub
    key = id(tool)
    del tool, first, second
    gc.collect()
    assert key not in fastcall._PLANS


# ------------------------------------------------------------------ the worker-thread hop

MARK: contextvars.ContextVar[str] = contextvars.ContextVar("mark", default="unset")


def _where(loop_thread: int) -> dict[str, Any]:
    """What a sync tool sees of its thread: not the loop's, the caller's context, anyio's
    way back to the loop, not cancelled, and no async library in the thread itself."""

    async def back() -> str:
        return MARK.get()

    try:
        sniffio.current_async_library()
        library = "found"
    except sniffio.AsyncLibraryNotFoundError:
        library = "none"
    anyio.from_thread.check_cancelled()
    return {
        "own_thread": threading.get_ident() != loop_thread,
        "mark": MARK.get(),
        "from_thread": anyio.from_thread.run(back),
        "library": library,
    }


def test_a_sync_call_sees_what_it_sees_on_an_anyio_worker() -> None:
    async def both() -> tuple[Any, Any]:
        MARK.set("caller")
        here = threading.get_ident()
        sdk = await anyio.to_thread.run_sync(functools.partial(_where, here))
        ours = await fastcall.on_worker(functools.partial(_where, here))
        return sdk, ours

    sdk, ours = anyio.run(both)
    assert (
        ours
        == sdk
        == {
            "own_thread": True,
            "mark": "caller",
            "from_thread": "caller",
            "library": "none",
        }
    )


def _blocked(hop: Any) -> list[str]:
    """Cancel a call whose thread waits; what happened, in order."""
    events: list[str] = []
    started, release = threading.Event(), threading.Event()

    def body() -> str:
        started.set()
        assert release.wait(10)
        try:
            anyio.from_thread.check_cancelled()
            events.append("body saw no cancellation")
        except BaseException as exc:  # the loop's cancellation exception
            events.append(f"body saw the cancellation ({type(exc).__name__})")
        return "done"

    async def main() -> None:
        async with anyio.create_task_group() as tg:

            async def call() -> None:
                try:
                    events.append(f"call returned {await hop(body)}")
                    await anyio.lowlevel.checkpoint()
                    events.append("call went on")
                except anyio.get_cancelled_exc_class():
                    events.append("cancelled at its next checkpoint")
                    raise

            tg.start_soon(call)
            while not started.is_set():
                await anyio.sleep(0.001)
            tg.cancel_scope.cancel()
            with anyio.CancelScope(shield=True):
                await anyio.sleep(0.05)  # the cancelled call is still waiting for its thread
                events.append("released")
                release.set()

    anyio.run(main)
    return events


def test_a_cancelled_call_waits_for_its_thread_then_is_cancelled() -> None:
    expected = [
        "released",
        "body saw the cancellation (CancelledError)",
        "call returned done",
        "cancelled at its next checkpoint",
    ]
    assert _blocked(anyio.to_thread.run_sync) == expected
    assert _blocked(fastcall.on_worker) == expected


@pytest.mark.parametrize("workers", [40, 1])
def test_parallel_sync_calls_each_get_a_thread(
    workers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fastcall, "_MAX_WORKERS", workers)  # beyond it: anyio.to_thread
    together = threading.Barrier(4, timeout=10)

    def meet(i: int) -> int:
        together.wait()  # breaks (BrokenBarrierError) unless all four run at once
        return i

    async def main() -> list[int]:
        got: list[int] = []
        async with anyio.create_task_group() as tg:
            for i in range(4):

                async def one(i: int = i) -> None:
                    got.append(await fastcall.on_worker(functools.partial(meet, i)))

                tg.start_soon(one)
        return sorted(got)

    assert anyio.run(main) == [0, 1, 2, 3]


def test_pings_and_other_calls_are_answered_while_a_sync_tool_waits(tmp_path: Path) -> None:
    from mcp import Client

    server = create_server(
        "hop", version="1", instructions="t", settings=ServerSettings(data_dir=tmp_path)
    )

    started, release, finished = threading.Event(), threading.Event(), threading.Event()
    order: list[str] = []

    @tool(server, READ_ONLY)
    def slow() -> Item:  # a model result: the planned path, not Tool.run
        """Wait until released."""
        started.set()
        order.append(f"slow released: {release.wait(10)}")  # False if the loop was blocked
        finished.set()
        return Item(name="slow", size=1)

    @tool(server, READ_ONLY)
    def fast(word: str) -> Item:
        """Answer at once."""
        order.append(f"fast {word}")
        return Item(name=word, size=0)

    manager = sdkseam.tool_manager(server)
    assert all(fastcall.plan_for(manager.get_tool(n)) for n in ("slow", "fast"))  # type: ignore[arg-type]

    async def main() -> list[Any]:
        seen: list[Any] = []
        async with Client(server, mode="legacy") as client:
            async with anyio.create_task_group() as tg:

                async def waiting() -> None:
                    await client.call_tool("slow", {})
                    seen.append("slow answered")

                tg.start_soon(waiting)
                with anyio.fail_after(10):
                    while not started.is_set():
                        await anyio.sleep(0.001)
                with warnings.catch_warnings():  # ping is legacy-only from 2026-07-28 on
                    warnings.simplefilter("ignore")
                    await client.send_ping()
                seen.append("ping")
                seen.append((await client.call_tool("fast", {"word": "hi"})).structured_content)
                tg.cancel_scope.cancel()  # the client gives up on the slow call
            release.set()
            with anyio.fail_after(10):
                while not finished.is_set():
                    await anyio.sleep(0.001)
            seen.append((await client.call_tool("fast", {"word": "after"})).structured_content)
        return seen

    try:
        assert anyio.run(main) == [
            "ping",
            {"name": "hi", "size": 0, "tags": []},
            {"name": "after", "size": 0, "tags": []},
        ]
        assert order == ["fast hi", "slow released: True", "fast after"]
    finally:
        release.set()
