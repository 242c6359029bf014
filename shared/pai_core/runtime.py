"""Running a server over stdio (default), Streamable HTTP (``/mcp``) or legacy SSE (``/sse``).

HTTP transports bind 127.0.0.1 unless told otherwise, validate ``Host`` and ``Origin`` against
loopback plus configured origins (DNS-rebinding protection), and refuse a non-loopback bind
unless a bearer token is configured; with a token, every request must carry
``Authorization: Bearer <token>`` (compared in constant time). SIGTERM and SIGINT shut down
gracefully: HTTP servers stop accepting and let in-flight requests finish for a few seconds; the
stdio server cancels in-flight calls cleanly and exits 0.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any, Literal

import anyio

from pai_core.errors import ConfigError
from pai_core.log import register_secret

if TYPE_CHECKING:
    from mcp.server import MCPServer
    from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["Transport", "bearer_guard", "http_app", "is_loopback", "serve"]

Transport = Literal["stdio", "http", "sse"]
log = logging.getLogger(__name__)
GRACEFUL_SHUTDOWN_S = 5


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bearer_guard(app: ASGIApp, token: str) -> ASGIApp:
    """ASGI middleware: every HTTP request must carry ``Authorization: Bearer <token>``."""
    expected = f"Bearer {token}".encode()

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        given = b""
        for key, value in scope.get("headers", []):
            if key == b"authorization":
                given = value
                break
        if not hmac.compare_digest(given, expected):
            body = b'{"error":"unauthorized","message":"missing or wrong bearer token"}'
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"www-authenticate", b'Bearer realm="pai"'),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await app(scope, receive, send)

    return guarded


def _security(host: str, extra_origins: list[str]) -> Any:
    from mcp.server.transport_security import TransportSecuritySettings

    hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*", "127.0.0.1", "localhost", "[::1]"]
    origins = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]
    if not is_loopback(host) and host not in ("0.0.0.0", "::"):
        hosts += [f"{host}:*", host]
        origins += [f"http://{host}:*", f"https://{host}:*"]
    if host in ("0.0.0.0", "::"):
        # Bound to every address: the Host header cannot be pinned; the bearer token (which a
        # rebinding page cannot know) guards instead, and http_app requires one here.
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=hosts,
        allowed_origins=origins + list(extra_origins),
    )


def http_app(
    server: MCPServer[Any],
    transport: Literal["http", "sse"],
    *,
    host: str = "127.0.0.1",
    token: str | None = None,
    allowed_origins: list[str] | None = None,
) -> ASGIApp:
    """The ASGI app for ``transport``, with Host/Origin checks and the bearer guard."""
    if not is_loopback(host) and not token:
        raise ConfigError(
            f"refusing to bind {host}: a non-loopback address needs a bearer token",
            hint="Set PAI_<NAME>_HTTP_TOKEN (or http_token in the config file), or bind 127.0.0.1.",
        )
    security = _security(host, allowed_origins or [])
    app: ASGIApp
    if transport == "http":
        app = server.streamable_http_app(transport_security=security, host=host)
    else:
        app = server.sse_app(transport_security=security, host=host)
    if token:
        register_secret(token)
        app = bearer_guard(app, token)
    return app


class _StdinLines:
    """Async lines of stdin whose blocking read is abandoned on cancellation.

    The SDK's own stdin reader waits in a worker thread that cancellation cannot interrupt,
    so a SIGTERM would hang until the client wrote another line. Abandoning the read lets
    shutdown finish at once; the process is exiting anyway.
    """

    def __init__(self) -> None:
        import io

        self._file = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace")

    def __aiter__(self) -> _StdinLines:
        return self

    async def __anext__(self) -> str:
        line = await anyio.to_thread.run_sync(self._file.readline, abandon_on_cancel=True)
        if not line:
            raise StopAsyncIteration
        return line


async def _serve_stdio(server: MCPServer[Any]) -> bool:
    """Serve until stdin closes (returns False) or a signal arrives (returns True)."""
    from mcp.server.stdio import stdio_server

    signalled = False

    lowlevel = server._lowlevel_server
    async with anyio.create_task_group() as tg:

        async def watch_signals() -> None:
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for signum in signals:
                    nonlocal signalled
                    signalled = True
                    log.info("received %s: cancelling in-flight calls", signal.Signals(signum).name)
                    tg.cancel_scope.cancel()
                    return

        tg.start_soon(watch_signals)
        async with stdio_server(stdin=_StdinLines()) as (read, write):  # type: ignore[arg-type]
            await lowlevel.run(read, write, lowlevel.create_initialization_options())
        tg.cancel_scope.cancel()
    return signalled


def serve(
    server: MCPServer[Any],
    transport: Transport = "stdio",
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    token: str | None = None,
    allowed_origins: list[str] | None = None,
) -> None:
    """Run ``server`` until its client goes away or SIGTERM/SIGINT arrives."""
    if transport == "stdio":
        if anyio.run(_serve_stdio, server):
            # In-flight calls were cancelled and their cleanup ran. What is left is the
            # abandoned stdin read, a thread that would block interpreter exit until the
            # client writes again: flush and leave now.
            logging.shutdown()
            sys.stdout.flush()
            os._exit(0)
        return
    import uvicorn

    app = http_app(server, transport, host=host, token=token, allowed_origins=allowed_origins)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        lifespan="on",
    )
    path = "/mcp" if transport == "http" else "/sse"
    print(f"pai: serving {server.name} on http://{host}:{port}{path}", file=sys.stderr)

    from pai_core.app import IN_FLIGHT

    class _Server(uvicorn.Server):
        draining = False

        def handle_exit(self, sig: int, frame: Any) -> None:
            # Streamed responses end the moment uvicorn starts shutting down, so first let
            # the tool calls under way finish (up to the grace period); a second signal
            # stops at once. uvicorn re-raises a captured signal after shutdown, which would
            # make a clean shutdown look like death by signal: drop it, exit 0.
            name = signal.Signals(sig).name
            if self.draining or IN_FLIGHT.count == 0:
                log.info("received %s: shutting down", name)
                super().handle_exit(sig, frame)
                self._captured_signals.clear()
                return
            self.draining = True
            log.info("received %s: waiting for %d call(s) to finish", name, IN_FLIGHT.count)

            def drain() -> None:
                IN_FLIGHT.wait_idle(GRACEFUL_SHUTDOWN_S)
                super(_Server, self).handle_exit(sig, None)
                self._captured_signals.clear()

            threading.Thread(target=drain, name="pai-drain", daemon=True).start()

    _Server(config).run()
