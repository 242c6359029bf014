"""Tools built when first needed, and their listing kept from one start to the next.

The SDK builds a tool as it is registered: a pydantic model of its arguments and the JSON
schemas of its arguments and result, 2-3 ms a tool. A server with 24 tools spent ~60 ms of
every start on it, the largest cost beyond the SDK's own import (benchmarks/results/
coldstart.md). With :class:`LazyToolManager`, registering records the function only; a tool
is built by the SDK the first time it is called, and ``tools/list`` is answered from a cache
of the schemas, kept in a file beside the server's data.

The cache is keyed by everything the schemas derive from (:func:`pai_core.fastfront.source_key`):
the source of the packages whose functions are the tools, the installed metadata of the SDK,
pydantic and pydantic-core, and the Python version; checked by file stats first, by content
when only the stats moved. Any change to these, or a tool added or removed, rebuilds every
tool (the first start after an install or upgrade pays the full cost once and writes the
cache). A cache that cannot be read or written only makes the listing slower, never wrong.
SDK internals used here are reached through :mod:`pai_core.sdkseam`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import Icon, ToolAnnotations

from pai_core.fastfront import key_state, read_json, source_key, write_json
from pai_core.sdkseam import Tool, ToolManager, built_tools, dependency_files, package_roots

__all__ = ["LazyToolManager", "ListedTool"]

log = logging.getLogger(__name__)
_FORMAT = 2


@dataclass(frozen=True, slots=True)
class ListedTool:
    """What ``tools/list`` shows of a tool: the attributes the SDK reads off its ``Tool``."""

    name: str
    title: str | None
    description: str
    parameters: dict[str, Any]
    output_schema: dict[str, Any] | None
    annotations: ToolAnnotations | None
    icons: list[Icon] | None
    meta: dict[str, Any] | None


@dataclass(slots=True)
class _Pending:
    fn: Callable[..., Any]
    options: dict[str, Any] = field(default_factory=dict)


class LazyToolManager(ToolManager):
    """The SDK's tool manager, building each tool on first use and listing from a cache."""

    def __init__(self, cache_file: Path | None, *, warn_on_duplicate_tools: bool = True) -> None:
        super().__init__(warn_on_duplicate_tools=warn_on_duplicate_tools)
        self.cache_file = cache_file
        self._built = built_tools(self)
        self._order: list[str] = []
        self._pending: dict[str, _Pending] = {}
        self._listing: list[ListedTool] | None = None
        self._lock = threading.RLock()

    def add_tool(  # type: ignore[override]
        self,
        fn: Callable[..., Any],
        name: str | None = None,
        title: str | None = None,
        description: str | None = None,
        annotations: ToolAnnotations | None = None,
        icons: list[Icon] | None = None,
        meta: dict[str, Any] | None = None,
        structured_output: bool | None = None,
    ) -> None:
        key = name or fn.__name__
        with self._lock:
            if key in self._pending or key in self._built:
                if self.warn_on_duplicate_tools:
                    log.warning("Tool already exists: %s", key)
                return
            self._pending[key] = _Pending(
                fn,
                {
                    "name": name,
                    "title": title,
                    "description": description,
                    "annotations": annotations,
                    "icons": icons,
                    "meta": meta,
                    "structured_output": structured_output,
                },
            )
            self._order.append(key)
            self._listing = None

    def remove_tool(self, name: str) -> None:
        with self._lock:
            if self._pending.pop(name, None) is None and self._built.pop(name, None) is None:
                raise ToolError(f"Unknown tool: {name}")
            self._order.remove(name)
            self._listing = None

    def get_tool(self, name: str) -> Tool | None:
        with self._lock:
            tool = self._built.get(name)
            if tool is None and name in self._pending:
                tool = self._build(name)
            return tool

    def list_tools(self) -> list[Tool]:
        with self._lock:
            if self._listing is None:
                self._listing = self._from_cache() or self._build_all()
            return self._listing  # type: ignore[return-value]  # read like Tools by the SDK

    def _build(self, name: str) -> Tool:
        pending = self._pending.pop(name)
        tool = Tool.from_function(pending.fn, **pending.options)
        self._built[name] = tool
        return tool

    def source_modules(self) -> list[str]:
        """The modules the tools' functions come from (what their schemas derive from)."""
        with self._lock:
            fns = [p.fn for p in self._pending.values()] + [t.fn for t in self._built.values()]
        return sorted({fn.__module__ for fn in fns})

    def _key(self) -> dict[str, Any]:
        return source_key(package_roots(self.source_modules()), dependency_files())

    def _from_cache(self) -> list[ListedTool] | None:
        if self.cache_file is None:
            return None
        cached = read_json(self.cache_file)
        if cached is None or cached.get("format") != _FORMAT:
            return None
        try:
            if key_state(cached.get("key")) == "stale":
                return None
            roots = set(package_roots(self.source_modules()))
            if not roots <= set(cached["key"]["roots"]):
                return None  # a tool from a package the key does not cover
            schemas = cached["tools"]
            if set(schemas) != set(self._order):
                return None
            return [self._listed(name, schemas[name]) for name in self._order]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            log.info("tool cache %s unusable (%s): building every tool", self.cache_file, exc)
            return None

    def _listed(self, name: str, schema: dict[str, Any]) -> ListedTool:
        tool = self._built.get(name)
        if tool is not None:
            return _as_listed(tool)
        pending = self._pending[name]
        options = pending.options
        return ListedTool(
            name=name,
            title=options["title"],
            description=options["description"] or pending.fn.__doc__ or "",
            parameters=dict(schema["parameters"]),
            output_schema=schema["output_schema"],
            annotations=options["annotations"],
            icons=options["icons"],
            meta=options["meta"],
        )

    def _build_all(self) -> list[ListedTool]:
        key = self._key()
        for name in list(self._pending):
            self._build(name)
        listing = [_as_listed(self._built[name]) for name in self._order]
        if self.cache_file is not None:
            self._write(key, listing)
        return listing

    def _write(self, key: dict[str, Any], listing: list[ListedTool]) -> None:
        assert self.cache_file is not None
        payload = {
            "format": _FORMAT,
            "key": key,
            "tools": {
                t.name: {"parameters": t.parameters, "output_schema": t.output_schema}
                for t in listing
            },
        }
        if not write_json(self.cache_file, payload):
            log.info("tool cache %s not written", self.cache_file)


def _as_listed(tool: Tool) -> ListedTool:
    return ListedTool(
        name=tool.name,
        title=tool.title,
        description=tool.description,
        parameters=tool.parameters,
        output_schema=tool.output_schema,
        annotations=tool.annotations,
        icons=tool.icons,
        meta=tool.meta,
    )
