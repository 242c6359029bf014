"""Building a PAI MCP server: the server object, the error mapping, and the ``health`` tool.

Register tools with :func:`tool` rather than ``server.tool()``: it is the same decorator plus
the one error mapping every PAI server needs. Every failure reaches the model as an ``isError``
result it can read, in one shape, ``<Kind>: <what> … <what to do>``:

- a :class:`~pai_core.errors.PaiError` or a pydantic validation error raised anywhere below the
  tool: its full message (``InvalidInput: changes[0].ttl: …``);
- arguments the SDK rejects before the tool runs (wrong type, unknown enum value, missing):
  ``InvalidInput: <field>: <problem>.`` naming every field, without the SDK's model name or
  documentation links;
- any other exception (a defect): ``UnexpectedError: <tool> failed …`` naming the exception,
  the argument it points at, and that nothing was changed; the traceback goes to the log.

None of them starts with the SDK's ``Error executing tool X:``. Sync tools run on a worker
thread, as in the SDK.
"""

from __future__ import annotations

import functools
import inspect
import logging
import platform
import threading
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Literal, TypeVar

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.types import EmptyResult, SetLevelRequestParams, ToolAnnotations
from pydantic import BaseModel, Field, ValidationError

from pai_core import sdkseam
from pai_core.annotations import READ_ONLY
from pai_core.errors import PaiError
from pai_core.log import configure_logging, redact
from pai_core.settings import ServerSettings
from pai_core.toolcache import LazyToolManager

__all__ = [
    "IN_FLIGHT",
    "Health",
    "add_health_tool",
    "arguments_error",
    "create_server",
    "tool",
    "tool_error",
    "unexpected_error",
]

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger(__name__)

_MCP_LEVELS = {
    "debug": "DEBUG",
    "info": "INFO",
    "notice": "INFO",
    "warning": "WARNING",
    "error": "ERROR",
    "critical": "CRITICAL",
    "alert": "CRITICAL",
    "emergency": "CRITICAL",
}


def tool_error(exc: BaseException) -> ToolError:
    """The ``ToolError`` the model should see for an anticipated failure."""
    if isinstance(exc, ValidationError):
        problems = "; ".join(
            f"{_field(e['loc']) if e['loc'] else 'value'}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
        return ToolError(f"InvalidInput: {problems}. Fix the named field and call again.")
    if isinstance(exc, PaiError):
        return ToolError(f"{type(exc).__name__}: {exc}")
    return ToolError(str(exc))


_MAX_DETAIL = 240


def unexpected_error(tool_name: str, exc: BaseException, arguments: dict[str, Any]) -> ToolError:
    """The ``ToolError`` for a defect: what failed, the argument it points at, nothing changed.

    The exception's text is redacted, argument values in it are replaced by the argument's
    name (a 100 kB path is not echoed back) and it is cut short. The traceback is logged.
    """
    log.error("tool %s failed unexpectedly", tool_name, exc_info=exc)
    detail = (
        "; ".join(f"{_field(e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False))
        if isinstance(exc, ValidationError)
        else str(exc)
    )
    culprits: list[str] = []
    for key, value in arguments.items():
        text = value if isinstance(value, str) else None
        if text and len(text) >= 3 and text[:64] in detail:
            culprits.append(key)
            detail = detail.replace(text, f"<{key}>").replace(text[:64], f"<{key}>")
    detail = redact(" ".join(detail.split()))
    if len(detail) > _MAX_DETAIL:
        detail = detail[:_MAX_DETAIL] + "…"
    kind = type(exc).__name__
    cause = f"{kind}: {detail}" if detail else kind
    if culprits:
        where = f" on argument {', '.join(repr(c) for c in culprits)}"
        todo = f"Try a different value for {culprits[0]!r}"
    elif arguments:
        where = f" (called with {', '.join(repr(k) for k in arguments)})"
        todo = "Check the arguments against the tool's description and try other values"
    else:
        where, todo = "", "Retry once"
    return ToolError(
        f"UnexpectedError: {tool_name} failed{where}: {cause}. The call was stopped before it "
        f"reported success; nothing was changed. {todo}; if it persists it is a defect of the "
        "server: see its log."
    )


def _field(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "arguments"


def arguments_error(tool_name: str, exc: ValidationError) -> ToolError:
    """Arguments the SDK rejected before ``tool_name`` ran, in PAI's ``InvalidInput`` shape."""
    problems = []
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.endswith("Arguments")))
        msg = str(err["msg"])
        if err["type"] == "missing":
            msg = "required, but missing"
        problems.append(f"{_field(loc)}: {msg}")
    shown = "; ".join(problems[:10])
    if len(problems) > 10:
        shown += f"; and {len(problems) - 10} more"
    return ToolError(
        f"InvalidInput: {shown}. Fix the named field(s) to match {tool_name}'s input schema and "
        "call again; nothing was changed."
    )


class InFlight:
    """Counts tool calls under way, so a graceful shutdown can wait for them to finish."""

    def __init__(self) -> None:
        self._count = 0
        self._idle = threading.Condition()

    def __enter__(self) -> None:
        with self._idle:
            self._count += 1

    def __exit__(self, *exc: object) -> None:
        with self._idle:
            self._count -= 1
            if self._count == 0:
                self._idle.notify_all()

    @property
    def count(self) -> int:
        return self._count

    def wait_idle(self, timeout: float) -> bool:
        """Block until no call is under way (True) or ``timeout`` passes (False)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._count == 0, timeout)


IN_FLIGHT = InFlight()


def _mapped(fn: F, name: str) -> F:
    # ToolError (already meant for the model) and MCPError (a protocol error) pass through;
    # cancellation is a BaseException and passes through too.
    from mcp.shared.exceptions import MCPError

    passthrough = (ToolError, MCPError)
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            with IN_FLIGHT:
                try:
                    return await fn(*args, **kwargs)
                except (PaiError, ValidationError) as exc:
                    raise tool_error(exc) from exc
                except passthrough:
                    raise
                except Exception as exc:
                    raise unexpected_error(name, exc, kwargs) from exc

        return run_async  # type: ignore[return-value]

    @functools.wraps(fn)
    def run_sync(*args: Any, **kwargs: Any) -> Any:
        with IN_FLIGHT:
            try:
                return fn(*args, **kwargs)
            except (PaiError, ValidationError) as exc:
                raise tool_error(exc) from exc
            except passthrough:
                raise
            except Exception as exc:
                raise unexpected_error(name, exc, kwargs) from exc

    return run_sync  # type: ignore[return-value]


class _ToolManager(LazyToolManager):
    """Calls tools like the SDK does, but every failure leaves in PAI's shape (see the module
    docstring): the SDK's ``Error executing tool X:`` prefix, its argument-model names and
    documentation links never reach the model."""

    async def call_tool(
        self,
        name: str,
        arguments: dict[str, Any],
        context: Any,
        convert_result: bool = False,
    ) -> Any:
        from pai_core import fastcall

        tool = self.get_tool(name)
        if tool is None:
            raise ToolError(
                f"NotFound: no tool named {name[:100]!r} on this server. List the tools "
                "(tools/list) and call one of them; nothing was changed."
            )
        try:
            # Tool.run's work and exceptions, with its per-call bookkeeping done once.
            return await fastcall.run(tool, arguments, context, convert_result)
        except UnexpectedToolError as exc:
            # A defect outside the tool body: a validator that crashed, a result that does
            # not fit the output schema. Logged with its traceback, reported readably.
            cause = exc.__cause__ or exc
            if isinstance(cause, ValidationError):
                log.error(
                    "tool %s returned a result its output schema rejects", name, exc_info=cause
                )
                raise ToolError(
                    f"UnexpectedError: {name} ran, but its result does not match its output "
                    f"schema ({cause.error_count()} problem(s)); it may have made its change. "
                    "Check the state with a read tool before retrying; this is a defect of the "
                    "server: see its log."
                ) from exc
            raise unexpected_error(name, cause, arguments) from exc
        except ToolError as exc:
            anticipated = exc.__cause__
            if isinstance(anticipated, ValidationError):  # the SDK's own argument validation
                raise arguments_error(name, anticipated) from anticipated
            if isinstance(anticipated, ToolError):  # raised by the tool (mapped in _mapped)
                raise ToolError(str(anticipated)) from anticipated
            text = str(exc).removeprefix(f"Error executing tool {name}: ")
            raise ToolError(text) from anticipated


def tool(
    server: MCPServer[Any],
    annotations: ToolAnnotations,
    *,
    name: str | None = None,
    title: str | None = None,
    structured_output: bool | None = None,
) -> Callable[[F], F]:
    """Register ``fn`` as a tool of ``server`` with ``annotations`` and PAI's error mapping."""

    def decorator(fn: F) -> F:
        server.add_tool(
            _mapped(fn, name or fn.__name__),
            name=name,
            description=inspect.cleandoc(fn.__doc__ or ""),
            title=title or annotations.title,
            annotations=annotations,
            structured_output=structured_output,
        )
        return fn

    return decorator


class Health(BaseModel):
    """What ``health`` returns: enough to tell at a glance whether the server can do its job."""

    server: str = Field(description="Server name.")
    version: str = Field(description="Server package version.")
    status: Literal["ok", "degraded", "unconfigured", "error"] = Field(
        description="ok: ready; degraded: works with reduced function; unconfigured: needs "
        "settings before it can act; error: cannot work."
    )
    backend: str = Field(description="What the server talks to, e.g. 'sqlite:/path' or 'rfc2136'.")
    configured: bool = Field(description="Whether the required settings are present.")
    problems: list[str] = Field(default_factory=list, description="What to fix, if anything.")
    details: dict[str, Any] = Field(default_factory=dict, description="Backend-specific facts.")
    settings: dict[str, Any] = Field(default_factory=dict, description="Settings, secrets masked.")
    uptime_s: float = Field(description="Seconds since this server process built its server.")
    python: str = Field(description="Python version running the server.")


HealthProbe = Callable[[], dict[str, Any]]


def add_health_tool(
    server: MCPServer[Any], *, version: str, settings: ServerSettings, probe: HealthProbe
) -> None:
    """Register ``health``; ``probe()`` returns ``backend``, ``configured`` and optionally
    ``problems``, ``details`` and ``status``."""
    started = time.monotonic()

    @tool(server, READ_ONLY, name="health", title="Server health")
    def health() -> Health:
        """Report this server's version, backend and configuration state.

        Call it first when a tool of this server fails, or to check the server is set up.
        It changes nothing and is cheap.
        """
        info = probe()
        problems = list(info.get("problems", []))
        configured = bool(info.get("configured", True))
        default = "unconfigured" if not configured else ("degraded" if problems else "ok")
        status: Any = info.get("status") or default
        return Health(
            server=server.name.removeprefix("pai-"),
            version=version,
            status=status,
            backend=str(info.get("backend", "none")),
            configured=configured,
            problems=problems,
            details=dict(info.get("details", {})),
            settings=settings.public_view(),
            uptime_s=round(time.monotonic() - started, 3),
            python=platform.python_version(),
        )


def _pai_logging(level: str = "INFO") -> None:
    """Stands in for the SDK's ``configure_logging`` while a PAI server is built: that one
    imports rich (~30 ms of every cold start) to install a handler that ``logging.basicConfig``
    then drops, because PAI's redacting stderr handler is already there. Where nothing has
    configured logging yet, PAI's handler is installed instead of rich's, so secrets are
    redacted on every path."""
    if not any(h.get_name() == "pai-stderr" for h in logging.getLogger().handlers):
        configure_logging(level)


def create_server(
    name: str,
    *,
    version: str,
    instructions: str,
    settings: ServerSettings,
    lifespan: Callable[[MCPServer[Any]], AbstractAsyncContextManager[Any]] | None = None,
) -> MCPServer[Any]:
    """An ``MCPServer`` named ``pai-<name>`` that declares the logging capability and builds
    its tools when first needed (their listing is cached in ``<data_dir>/cache``).

    ``lifespan`` wraps the server's run: resources it opens (a browser, a pool) are closed when
    the server stops, on every transport.
    """
    with sdkseam.sdk_logging_replaced(_pai_logging):
        server: MCPServer[Any] = MCPServer(
            f"pai-{name}",
            version=version,
            instructions=instructions,
            log_level=_level(settings.log_level),
            lifespan=lifespan,
        )

    async def set_level(ctx: Any, params: SetLevelRequestParams) -> EmptyResult:
        logging.getLogger().setLevel(_MCP_LEVELS.get(str(params.level), "INFO"))
        log.info("log level set to %s by the client", params.level)
        return EmptyResult()

    sdkseam.lowlevel(server).add_request_handler(
        "logging/setLevel", SetLevelRequestParams, set_level
    )
    # Tools are built on first use and listed from a cache (see pai_core.toolcache): start-up
    # no longer pays for every tool's schemas.
    cache = settings.data_path / "cache"
    manager = _ToolManager(
        cache / "tools.json", warn_on_duplicate_tools=server.settings.warn_on_duplicate_tools
    )
    sdkseam.set_tool_manager(server, manager)
    # The first tools/list answer also records the handshake for the stdio front of the next
    # start (pai_core.fastfront).
    sdkseam.record_front_on_listing(server, cache, manager.source_modules)
    return server


def _level(value: str) -> Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]:
    upper = value.upper()
    if upper in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        return upper  # type: ignore[return-value]
    return "INFO"
