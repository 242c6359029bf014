"""One tool call, the way the SDK's ``Tool.run`` makes it, with its per-call bookkeeping done once.

``Tool.run`` (``mcp.server.mcpserver.tools.base``) validates the arguments, runs the function
(a sync one on a worker thread) and converts the result into a ``CallToolResult``: the result
as JSON text (indent 2) and, with an output model, as ``structuredContent``. On every call it
also rebuilds a map of the argument fields to pre-parse JSON strings, dumps the argument model
through a generic loop, checks the result against image, audio, content-block and
input-required types and validates a returned model against its own type again. For a PAI
tool that returns its declared output model, that bookkeeping is about half of the SDK's
share of a call (20-40 µs of 30-70 µs).

:func:`run` does the same work from a :class:`Plan` made once per tool: the same
``arg_model`` validation (``pre_parse_json`` only where an argument is a string for a field
that is not), the same serialisations (``pydantic_core.to_json(result, fallback=str,
indent=2)`` and ``model_dump(mode="json", by_alias=True)``), the same worker thread, and
the same exceptions as ``Tool.run`` (``ToolError``/``UnexpectedToolError`` whose
``__cause__`` is what was raised, ``MCPError`` passed through), so the caller maps errors
in one place. A client receives the same bytes either way (``tests/shared/test_fastcall.py``
compares both paths).

Everything else goes to ``Tool.run`` unchanged: a tool with resolvers, a ``Tool`` subclass
with its own ``run``, a result that is not exactly the declared output model (a dict, a
subclass, a ``CallToolResult``, content blocks, an ``InputRequiredResult``), an output model
that revalidates instances, and output wrapped as ``{"result": ...}``.

The SDK attributes read here are listed in :data:`SDK_ATTRIBUTES`; :func:`seam_problems`
names the one an upgrade moved.
"""

from __future__ import annotations

import functools
import weakref
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
import pydantic_core
from mcp.server.mcpserver.exceptions import (
    ResourceError,
    ToolError,
    UnexpectedResourceError,
    UnexpectedToolError,
)
from mcp.server.mcpserver.tools.base import Tool
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult, TextContent
from pydantic import BaseModel, ValidationError

__all__ = ["SDK_ATTRIBUTES", "Plan", "plan_for", "run", "seam_problems"]

SDK_ATTRIBUTES = {
    "Tool": ("fn", "name", "fn_metadata", "is_async", "context_kwarg", "resolved_params", "run"),
    "FuncMetadata": ("arg_model", "output_schema", "output_model", "wrap_output"),
    "FuncMetadata methods": ("pre_parse_json", "convert_result"),
}
"""What this module reads of the SDK's ``Tool`` and ``FuncMetadata`` (checked by a test)."""


@dataclass(frozen=True, slots=True)
class Plan:
    """What ``Tool.run`` works out on every call, worked out once for one tool."""

    arg_model: type[BaseModel]
    output_model: type[BaseModel] | None
    json_keys: frozenset[str]
    """Argument names (and aliases) a JSON string may be pre-parsed for."""
    names: tuple[tuple[str, str], ...]
    """(field name, keyword the function receives) for every argument field."""

    def current(self, tool: Tool) -> bool:
        """Whether the tool's metadata is still what the plan was made from (the SDK reads
        ``arg_model`` and ``output_model`` live, so a reassignment takes effect)."""
        metadata = tool.fn_metadata
        output = metadata.output_model if metadata.output_schema is not None else None
        return metadata.arg_model is self.arg_model and output is self.output_model

    def arguments(self, tool: Tool, arguments: dict[str, Any]) -> dict[str, Any]:
        """The keyword arguments ``Tool.run`` would call the function with."""
        keys = self.json_keys
        if keys and any(isinstance(v, str) and k in keys for k, v in arguments.items()):
            arguments = tool.fn_metadata.pre_parse_json(arguments)
        model = self.arg_model.model_validate(arguments)
        return {keyword: getattr(model, name) for name, keyword in self.names}

    def convert(self, tool: Tool, result: Any) -> Any:
        """The ``CallToolResult`` ``FuncMetadata.convert_result`` would make of ``result``."""
        if self.output_model is None or type(result) is not self.output_model:
            return tool.fn_metadata.convert_result(result)
        text = pydantic_core.to_json(result, fallback=str, indent=2).decode()
        return CallToolResult(
            content=[TextContent(type="text", text=text)],
            structured_content=result.model_dump(mode="json", by_alias=True),
        )


_PLANS: dict[int, tuple[weakref.ref[Tool], Plan | None]] = {}
"""Plans by ``id(tool)``, each dropped when its tool is collected."""


def plan_for(tool: Tool) -> Plan | None:
    """The tool's plan, made on its first call; None where ``Tool.run`` must do the call."""
    key = id(tool)
    held = _PLANS.get(key)
    if held is not None and held[0]() is tool and (held[1] is None or held[1].current(tool)):
        return held[1]
    plan = _make_plan(tool)
    _PLANS[key] = (weakref.ref(tool, functools.partial(_forget, key)), plan)
    return plan


def _forget(key: int, _: object) -> None:
    _PLANS.pop(key, None)


def _make_plan(tool: Tool) -> Plan | None:
    metadata = tool.fn_metadata
    if type(tool).run is not Tool.run or tool.resolved_params or metadata.wrap_output:
        return None
    output: type[BaseModel] | None = None
    if metadata.output_schema is not None:
        model = metadata.output_model
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        if model.model_config.get("revalidate_instances", "never") != "never":
            return None
        output = model
    fields = metadata.arg_model.model_fields
    json_keys = {
        key
        for name, info in fields.items()
        if info.annotation is not str
        for key in (name, info.alias)
        if key
    }
    return Plan(
        arg_model=metadata.arg_model,
        output_model=output,
        json_keys=frozenset(json_keys),
        names=tuple((name, info.alias or name) for name, info in fields.items()),
    )


async def run(
    tool: Tool, arguments: dict[str, Any], context: Any, convert_result: bool = False
) -> Any:
    """Call ``tool`` as ``tool.run(arguments, context, convert_result=...)`` would, raising
    what it raises."""
    plan = plan_for(tool)
    if plan is None:
        return await tool.run(arguments, context, convert_result=convert_result)
    try:
        kwargs = plan.arguments(tool, arguments)
    except ValidationError as exc:
        raise ToolError(f"Error executing tool {tool.name}: {exc}") from exc
    except MCPError:
        raise
    except Exception as exc:
        raise UnexpectedToolError(f"Error executing tool {tool.name}") from exc
    if tool.context_kwarg is not None:
        kwargs[tool.context_kwarg] = context
    try:
        if tool.is_async:
            result = await tool.fn(**kwargs)
        else:
            result = await anyio.to_thread.run_sync(functools.partial(tool.fn, **kwargs))
        return plan.convert(tool, result) if convert_result else result
    except MCPError:
        raise
    except (UnexpectedToolError, UnexpectedResourceError) as exc:
        raise UnexpectedToolError(f"Error executing tool {tool.name}: {exc}") from exc
    except (ToolError, ResourceError) as exc:
        raise ToolError(f"Error executing tool {tool.name}: {exc}") from exc
    except Exception as exc:
        raise UnexpectedToolError(f"Error executing tool {tool.name}") from exc


def seam_problems() -> list[str]:
    """The SDK attributes this module relies on that the installed SDK no longer has."""
    from mcp.server.mcpserver.utilities.func_metadata import FuncMetadata

    problems = [
        f"Tool.{a}"
        for a in SDK_ATTRIBUTES["Tool"]
        if a not in Tool.model_fields and not hasattr(Tool, a)
    ]
    problems += [
        f"FuncMetadata.{a}"
        for a in SDK_ATTRIBUTES["FuncMetadata"]
        if a not in FuncMetadata.model_fields
    ]
    problems += [
        f"FuncMetadata.{a}"
        for a in SDK_ATTRIBUTES["FuncMetadata methods"]
        if not callable(getattr(FuncMetadata, a, None))
    ]
    return problems
