"""pai_core.fastcall makes a call exactly as the SDK's Tool.run does: same result, same errors."""

from __future__ import annotations

import gc
from typing import Annotated, Any

import anyio
import pytest
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools.base import Tool
from mcp.types import CallToolResult, ImageContent, TextContent
from pydantic import BaseModel, ConfigDict, Field

from pai_core import fastcall
from pai_core.errors import InvalidInput


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


def test_the_sdk_still_has_what_fastcall_reads() -> None:
    # An SDK upgrade that renames one of these fails here, naming it.
    assert fastcall.seam_problems() == []
