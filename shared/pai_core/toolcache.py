"""Tools built when first needed, and their listing kept from one start to the next.

The SDK builds a tool as it is registered: a pydantic model of its arguments and the JSON
schemas of its arguments and result, 2-3 ms a tool. A server with 24 tools spent ~60 ms of
every start on it, the largest cost beyond the SDK's own import (benchmarks/results/
coldstart.md). With :class:`LazyToolManager`, registering records the function only; a tool
is built by the SDK the first time it is called, and ``tools/list`` is answered from a cache
of the schemas, kept in a file beside the server's data.

The cache is keyed by a fingerprint of everything the schemas derive from: the source of the
packages whose functions are the tools, and the versions of Python, the SDK, pydantic and
pydantic-core. Any change to these, or a tool added or removed, rebuilds every tool (the
first start after an install or upgrade pays the full cost once and writes the cache). A
cache that cannot be read or written only makes the listing slower, never wrong.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools.base import Tool
from mcp.server.mcpserver.tools.tool_manager import ToolManager
from mcp.types import Icon, ToolAnnotations

__all__ = ["LazyToolManager", "ListedTool", "code_fingerprint"]

log = logging.getLogger(__name__)
_FORMAT = 1


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


def code_fingerprint(modules: list[str]) -> str:
    """A digest of the source of the top-level packages of ``modules`` and of the versions
    the SDK's schema generation depends on."""
    from importlib import metadata

    import pydantic
    import pydantic_core

    digest = hashlib.sha256()
    for part in (
        str(_FORMAT),
        sys.version,
        metadata.version("mcp"),
        pydantic.VERSION,
        pydantic_core.__version__,
    ):
        digest.update(part.encode() + b"\0")
    roots: set[Path] = set()
    for name in modules:
        package = sys.modules.get(name.partition(".")[0])
        for location in getattr(package, "__path__", None) or []:
            roots.add(Path(location))
        if package is not None and getattr(package, "__path__", None) is None and package.__file__:
            roots.add(Path(package.__file__))  # a plain module
    for root in sorted(roots):
        files = sorted(root.rglob("*.py")) if root.is_dir() else [root]
        for path in files:
            digest.update(str(path.relative_to(root.parent)).encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


class LazyToolManager(ToolManager):
    """The SDK's tool manager, building each tool on first use and listing from a cache."""

    def __init__(self, cache_file: Path | None, *, warn_on_duplicate_tools: bool = True) -> None:
        super().__init__(warn_on_duplicate_tools=warn_on_duplicate_tools)
        self.cache_file = cache_file
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
            if key in self._pending or key in self._tools:
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
            if self._pending.pop(name, None) is None and self._tools.pop(name, None) is None:
                raise ToolError(f"Unknown tool: {name}")
            self._order.remove(name)
            self._listing = None

    def get_tool(self, name: str) -> Tool | None:
        with self._lock:
            tool = self._tools.get(name)
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
        self._tools[name] = tool
        return tool

    def _fingerprint(self) -> str:
        with self._lock:
            fns = [self._pending[n].fn for n in self._pending] + [
                t.fn for t in self._tools.values()
            ]
        return code_fingerprint(sorted({fn.__module__ for fn in fns}))

    def _from_cache(self) -> list[ListedTool] | None:
        if self.cache_file is None:
            return None
        try:
            cached = json.loads(self.cache_file.read_text(encoding="utf-8"))
            if cached.get("fingerprint") != self._fingerprint():
                return None
            schemas = cached["tools"]
            if set(schemas) != set(self._order):
                return None
            return [self._listed(name, schemas[name]) for name in self._order]
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.info("tool cache %s unusable (%s): building every tool", self.cache_file, exc)
            return None

    def _listed(self, name: str, schema: dict[str, Any]) -> ListedTool:
        tool = self._tools.get(name)
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
        fingerprint = self._fingerprint()
        for name in list(self._pending):
            self._build(name)
        listing = [_as_listed(self._tools[name]) for name in self._order]
        if self.cache_file is not None:
            self._write(fingerprint, listing)
        return listing

    def _write(self, fingerprint: str, listing: list[ListedTool]) -> None:
        assert self.cache_file is not None
        payload = {
            "fingerprint": fingerprint,
            "tools": {
                t.name: {"parameters": t.parameters, "output_schema": t.output_schema}
                for t in listing
            },
        }
        tmp = self.cache_file.with_name(f".{self.cache_file.name}.{os.getpid()}.tmp")
        try:
            self.cache_file.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(payload, separators=(",", ":")), encoding="utf-8")
            os.replace(tmp, self.cache_file)  # readers see the old file or the new, never half
        except OSError as exc:
            log.info("tool cache %s not written: %s", self.cache_file, exc)
            with contextlib.suppress(OSError):
                tmp.unlink()


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
