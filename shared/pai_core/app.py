"""Building a PAI MCP server: the server object, the error mapping, and the ``health`` tool.

Register tools with :func:`tool` rather than ``server.tool()``: it is the same decorator plus
the one error mapping every PAI server needs (a :class:`~pai_core.errors.PaiError` or a pydantic
validation error raised anywhere below the tool reaches the model as an ``isError`` result with
its full message; see the SDK's ``ToolError``). Sync tools run on a worker thread, as in the SDK.
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
from mcp.server.mcpserver import server as _sdk_server
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import EmptyResult, SetLevelRequestParams, ToolAnnotations
from pydantic import BaseModel, Field, ValidationError

from pai_core.annotations import READ_ONLY
from pai_core.errors import PaiError
from pai_core.log import configure_logging
from pai_core.settings import ServerSettings
from pai_core.toolcache import LazyToolManager

__all__ = ["IN_FLIGHT", "Health", "add_health_tool", "create_server", "tool", "tool_error"]

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
            f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in exc.errors()
        )
        return ToolError(f"InvalidInput: {problems}. Fix the named field and call again.")
    if isinstance(exc, PaiError):
        return ToolError(f"{type(exc).__name__}: {exc}")
    return ToolError(str(exc))


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


def _mapped(fn: F) -> F:
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            with IN_FLIGHT:
                try:
                    return await fn(*args, **kwargs)
                except (PaiError, ValidationError) as exc:
                    raise tool_error(exc) from exc

        return run_async  # type: ignore[return-value]

    @functools.wraps(fn)
    def run_sync(*args: Any, **kwargs: Any) -> Any:
        with IN_FLIGHT:
            try:
                return fn(*args, **kwargs)
            except (PaiError, ValidationError) as exc:
                raise tool_error(exc) from exc

    return run_sync  # type: ignore[return-value]


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
            _mapped(fn),
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
    sdk_logging = getattr(_sdk_server, "configure_logging", None)
    _sdk_server.configure_logging = _pai_logging  # type: ignore[attr-defined]  # while built
    try:
        server: MCPServer[Any] = MCPServer(
            f"pai-{name}",
            version=version,
            instructions=instructions,
            log_level=_level(settings.log_level),
            lifespan=lifespan,
        )
    finally:
        if sdk_logging is not None:
            _sdk_server.configure_logging = sdk_logging  # type: ignore[attr-defined]

    async def set_level(ctx: Any, params: SetLevelRequestParams) -> EmptyResult:
        logging.getLogger().setLevel(_MCP_LEVELS.get(str(params.level), "INFO"))
        log.info("log level set to %s by the client", params.level)
        return EmptyResult()

    server._lowlevel_server.add_request_handler(
        "logging/setLevel", SetLevelRequestParams, set_level
    )
    # Tools are built on first use and listed from a cache (see pai_core.toolcache): start-up
    # no longer pays for every tool's schemas.
    server._tool_manager = LazyToolManager(
        settings.data_path / "cache" / "tools.json",
        warn_on_duplicate_tools=server.settings.warn_on_duplicate_tools,
    )
    return server


def _level(value: str) -> Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]:
    upper = value.upper()
    if upper in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        return upper  # type: ignore[return-value]
    return "INFO"
