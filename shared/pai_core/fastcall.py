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

A sync tool runs on a worker thread, as in ``Tool.run``, but handed over more cheaply than
``anyio.to_thread.run_sync`` does (see :func:`on_worker`): the same guarantees (a copy of the
caller's context, a shielded wait, so a cancelled call still waits for its thread; a thread per
call in flight, ``anyio.from_thread`` usable inside) for a third of the cost of the hop.

What this module reads of the SDK lives in :mod:`pai_core.sdkseam`
(``sdkseam.TOOL_ATTRIBUTES``; ``sdkseam.seam_problems`` names the one an upgrade moved).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import queue
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
import anyio.lowlevel
import anyio.to_thread
import pydantic_core
from mcp.server.mcpserver.exceptions import (
    ResourceError,
    ToolError,
    UnexpectedResourceError,
    UnexpectedToolError,
)
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult, TextContent
from pydantic import BaseModel, ValidationError

from pai_core import sdkseam
from pai_core.sdkseam import Tool

__all__ = ["Plan", "on_worker", "plan_for", "run"]

T = TypeVar("T")


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
        return (
            sdkseam.tool_arg_model(tool) is self.arg_model
            and sdkseam.tool_output_model(tool) is self.output_model
        )

    def arguments(self, tool: Tool, arguments: dict[str, Any]) -> dict[str, Any]:
        """The keyword arguments ``Tool.run`` would call the function with."""
        keys = self.json_keys
        if keys and any(isinstance(v, str) and k in keys for k, v in arguments.items()):
            arguments = sdkseam.pre_parse_json(tool, arguments)
        model = self.arg_model.model_validate(arguments)
        return {keyword: getattr(model, name) for name, keyword in self.names}

    def convert(self, tool: Tool, result: Any) -> Any:
        """The ``CallToolResult`` ``FuncMetadata.convert_result`` would make of ``result``."""
        if self.output_model is None or type(result) is not self.output_model:
            return sdkseam.convert_result(tool, result)
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
    if not sdkseam.tool_plain(tool):
        return None
    output: type[BaseModel] | None = None
    model = sdkseam.tool_output_model(tool)
    if model is not None:
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        if model.model_config.get("revalidate_instances", "never") != "never":
            return None
        output = model
    arg_model = sdkseam.tool_arg_model(tool)
    fields = arg_model.model_fields
    json_keys = {
        key
        for name, info in fields.items()
        if info.annotation is not str
        for key in (name, info.alias)
        if key
    }
    return Plan(
        arg_model=arg_model,
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
    fn, is_async, context_kwarg = sdkseam.tool_call(tool)
    if context_kwarg is not None:
        kwargs[context_kwarg] = context
    try:
        if is_async:
            result = await fn(**kwargs)
        else:
            result = await on_worker(functools.partial(fn, **kwargs))
        return plan.convert(tool, result) if convert_result else result
    except MCPError:
        raise
    except (UnexpectedToolError, UnexpectedResourceError) as exc:
        raise UnexpectedToolError(f"Error executing tool {tool.name}: {exc}") from exc
    except (ToolError, ResourceError) as exc:
        raise ToolError(f"Error executing tool {tool.name}: {exc}") from exc
    except Exception as exc:
        raise UnexpectedToolError(f"Error executing tool {tool.name}") from exc


# ------------------------------------------------------------------ the worker-thread hop

_MAX_WORKERS = 40
"""Threads a loop keeps for sync tools (anyio's default thread limit); calls beyond them go
to ``anyio.to_thread`` and wait for its limiter."""
_IDLE_S = 10.0
"""A worker idle this long ends (as anyio's do); one whose loop has closed ends within 1 s."""


class _Worker(threading.Thread):
    """One thread that runs the calls handed to it, one at a time, for one event loop."""

    def __init__(self, pool: _Pool, token: Any) -> None:
        super().__init__(name="pai worker", daemon=True)
        self.pool = pool
        self.token = token
        self.jobs: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()

    def run(self) -> None:
        pool = self.pool
        with sdkseam.worker_thread(self.token):
            del self.token
            idle_since = time.monotonic()
            while True:
                try:
                    future, context, fn, scope = self.jobs.get(timeout=1.0)
                except queue.Empty:
                    loop = pool.loop()
                    gone = loop is None or loop.is_closed()
                    if (gone or time.monotonic() - idle_since >= _IDLE_S) and pool.retire(self):
                        return
                    continue  # still wanted, or taken just now: its job is on the way
                sdkseam.set_worker_cancel_scope(scope)
                try:
                    result, error = context.run(fn), None
                except BaseException as exc:
                    result, error = None, exc
                finally:
                    sdkseam.clear_worker_cancel_scope()
                loop = pool.loop()
                try:
                    assert loop is not None
                    loop.call_soon_threadsafe(pool.done, self, future, result, error)
                except (AssertionError, RuntimeError):  # the loop closed: nobody waits
                    pool.retire(self, busy=True)
                    return
                del future, context, fn, scope, result, error, loop
                idle_since = time.monotonic()


class _Pool:
    """The worker threads of one event loop: an idle one takes the next call."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = weakref.ref(loop)
        self.idle: list[_Worker] = []
        self.count = 0
        self.lock = threading.Lock()

    def take(self) -> _Worker | None:
        with self.lock:
            if self.idle:
                return self.idle.pop()
            if self.count >= _MAX_WORKERS:
                return None
            self.count += 1
        worker = _Worker(self, anyio.lowlevel.current_token())
        worker.start()
        return worker

    def retire(self, worker: _Worker, busy: bool = False) -> bool:
        """Take an idle (or ``busy``) worker off the pool; False if a call just took it."""
        with self.lock:
            if worker in self.idle:
                self.idle.remove(worker)
            elif not busy:
                return False
            self.count -= 1
            return True

    def done(self, worker: _Worker, future: asyncio.Future[Any], result: Any, error: Any) -> None:
        with self.lock:
            self.idle.append(worker)
        if future.cancelled():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)


_POOLS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Pool] = weakref.WeakKeyDictionary()


async def on_worker(fn: Callable[[], T]) -> T:
    """``await anyio.to_thread.run_sync(fn)``, handed over more cheaply.

    The same guarantees: ``fn`` runs in a copy of the caller's context on a thread of its own
    (one per call in flight, up to anyio's default of 40, then ``anyio.to_thread`` itself);
    the wait is shielded, so a cancelled caller still waits for ``fn`` to finish and is
    cancelled after; ``anyio.from_thread`` works inside. What it leaves out is anyio's
    per-call bookkeeping (two checkpoints, a capacity limiter, a queue written in Python,
    the pruning of idle threads): 100-300 µs of each hop on a busy machine. Outside an
    asyncio event loop it is ``anyio.to_thread.run_sync``.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return await anyio.to_thread.run_sync(fn)
    pool = _POOLS.get(loop)
    if pool is None:
        pool = _POOLS[loop] = _Pool(loop)
    worker = pool.take()
    if worker is None:
        return await anyio.to_thread.run_sync(fn)
    context = contextvars.copy_context()
    sdkseam.no_async_library(context)  # as anyio's worker: the thread is not "in" the loop
    future: asyncio.Future[T] = loop.create_future()
    with anyio.CancelScope(shield=True) as scope:
        worker.jobs.put((future, context, fn, scope))
        result = await future
    return result
