"""Running a server over stdio (default), Streamable HTTP (``/mcp``) or legacy SSE (``/sse``).

HTTP transports bind 127.0.0.1 unless told otherwise, validate ``Host`` and ``Origin`` against
the bound address, loopback and configured origins (DNS-rebinding protection), and refuse a
non-loopback bind unless a bearer token is configured; with a token, every request must carry
``Authorization: Bearer <token>`` (compared in constant time). A token is at least
:data:`MIN_TOKEN_LENGTH` characters without whitespace, or the server does not start. Requests
with a foreign ``Host``/``Origin`` are refused before the SDK sees them, with one log line per
ten seconds however many arrive. Malformed JSON-RPC (not JSON, nested too deeply, an ``id``
that is not a string or integer) is answered with its JSON-RPC error on every transport
(:mod:`pai_core.wire`) instead of being dropped. SIGTERM and SIGINT shut down gracefully: HTTP
servers stop accepting and let in-flight requests finish for a few seconds; the stdio server
cancels in-flight calls cleanly and exits 0. Over stdio the SDK may take over a session the
front (:mod:`pai_core.fastfront`) began: ``serve(..., handoff=...)``.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import anyio

from pai_core.errors import ConfigError
from pai_core.log import register_secret
from pai_core.wire import RateLimitedLog, Rejection, triage

if TYPE_CHECKING:
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
    from mcp.server import MCPServer
    from mcp.server.transport_security import TransportSecuritySettings
    from mcp.shared.message import SessionMessage
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from pai_core.fastfront import Handoff

__all__ = [
    "MIN_TOKEN_LENGTH",
    "Transport",
    "bearer_guard",
    "check_token",
    "http_app",
    "is_loopback",
    "serve",
    "token_variables",
]

Transport = Literal["stdio", "http", "sse"]
log = logging.getLogger(__name__)
GRACEFUL_SHUTDOWN_S = 5
MIN_TOKEN_LENGTH = 24
# Bodies are triaged up to the SDK's own body cap; past it they go on to the SDK, which
# answers 413 (mcp.server.transport_security.DEFAULT_MAX_REQUEST_BODY_SIZE).
_MAX_TRIAGED_BODY = 4 * 1024 * 1024
_refusals = RateLimitedLog(log)


def token_variables(server_name: str) -> str:
    """The environment variables that set ``server_name``'s bearer token, for messages."""
    own = server_name.removeprefix("pai-").upper().replace("-", "_")
    return f"PAI_{own}_HTTP_TOKEN (or PAI_HTTP_TOKEN for every server)"


def check_token(token: str | None, where: str) -> None:
    """Refuse a token too weak to protect anything: shorter than :data:`MIN_TOKEN_LENGTH`
    characters or containing whitespace (no client could send it). ``where`` names the
    setting for the message."""
    if token is None:
        return
    if not token.strip() or any(c.isspace() for c in token):
        raise ConfigError(
            "refusing to start: the bearer token contains whitespace, so no client could send it",
            hint=f"Set {where} to a random string without spaces, e.g. "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`.",
        )
    if len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(
            f"refusing to start: the bearer token has {len(token)} characters; at least "
            f"{MIN_TOKEN_LENGTH} are required so it cannot be guessed",
            hint=f"Set {where} to a longer random string, e.g. "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`.",
        )


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


def _security(host: str, extra_origins: list[str]) -> TransportSecuritySettings:
    from mcp.server.transport_security import TransportSecuritySettings

    hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*", "127.0.0.1", "localhost", "[::1]"]
    origins = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]
    bound = f"[{host.strip('[]')}]" if ":" in host else host
    if host not in ("0.0.0.0", "::") and f"{bound}:*" not in hosts:
        # The address the server is bound to (127.0.0.2, a LAN address) is what a client
        # puts in Host: allow it besides loopback.
        hosts += [f"{bound}:*", bound]
        origins += [f"http://{bound}:*", f"https://{bound}:*"]
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
    """The ASGI app for ``transport``, with Host/Origin checks, answers to malformed
    JSON-RPC, and the bearer guard."""
    variables = token_variables(server.name)
    check_token(token, variables)
    if not is_loopback(host) and not token:
        raise ConfigError(
            f"refusing to bind {host}: a non-loopback address needs a bearer token",
            hint=f"Set {variables} (or http_token in the config file), or bind 127.0.0.1.",
        )
    security = _security(host, allowed_origins or [])
    app: ASGIApp
    if transport == "http":
        app = server.streamable_http_app(transport_security=security, host=host)
    else:
        app = server.sse_app(transport_security=security, host=host)
    app = _wire_guard(app, security)
    if token:
        register_secret(token)
        app = bearer_guard(app, token)
    return app


def _allowed(value: str, patterns: list[str]) -> bool:
    return value in patterns or any(
        p.endswith(":*") and value.startswith(p[:-1]) and value[len(p) - 1 :].isdigit()
        for p in patterns
    )


async def _respond(send: Send, status: int, body: bytes, content_type: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _wire_guard(app: ASGIApp, security: TransportSecuritySettings) -> ASGIApp:
    """ASGI middleware before the SDK's app: a foreign Host or Origin is refused here (the
    SDK's SSE endpoint would log a 3 KB traceback for each), and a POSTed body that is not one
    valid JSON-RPC message is answered with its JSON-RPC error instead of a 202 and silence."""

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if security.enable_dns_rebinding_protection:
            host, origin = headers.get("host", ""), headers.get("origin")
            if not _allowed(host, security.allowed_hosts):
                _refusals.warning("host", "refused a request with foreign Host %.80r (421)", host)
                await _respond(send, 421, b"Invalid Host header", b"text/plain")
                return
            if origin and not _allowed(origin, security.allowed_origins):
                _refusals.warning(
                    "origin", "refused a request with foreign Origin %.80r (403)", origin
                )
                await _respond(send, 403, b"Invalid Origin header", b"text/plain")
                return
        if scope.get("method") != "POST":
            await app(scope, receive, send)
            return
        body, complete, pending = await _read_body(receive)
        if complete:
            rejection = triage(bytes(body))
            if rejection is not None:
                _refusals.warning(
                    "malformed", "malformed JSON-RPC over HTTP: %s", rejection.describe()
                )
                await _respond(send, 400, rejection.as_json(), b"application/json")
                return
        await app(scope, _replay(bytes(body), complete, pending, receive), send)

    return guarded


async def _read_body(receive: Receive) -> tuple[bytearray, bool, Message | None]:
    """The request body read so far, whether it is complete, and a message that arrived
    instead of more body (a disconnect) to hand on. Reading stops past the triage cap."""
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return body, False, message
        body += message.get("body", b"")
        if not message.get("more_body", False):
            return body, True, None
        if len(body) > _MAX_TRIAGED_BODY:
            return body, False, None


def _replay(body: bytes, complete: bool, pending: Message | None, receive: Receive) -> Receive:
    """``receive`` for the app: the body read so far, then what was held back, then the rest."""
    queue: list[Message] = [{"type": "http.request", "body": body, "more_body": not complete}]
    if pending is not None:
        queue.append(pending)

    async def replay() -> Message:
        return queue.pop(0) if queue else await receive()

    return replay


class _StdinLines:
    """Async lines of stdin whose blocking read is abandoned on cancellation.

    The SDK's own stdin reader waits in a worker thread that cancellation cannot interrupt,
    so a SIGTERM would hang until the client wrote another line. Abandoning the read lets
    shutdown finish at once; the process is exiting anyway. After a front, the lines it
    passed on come first, then the front's reader of stdin.
    """

    def __init__(
        self,
        rejected: MemoryObjectSendStream[Rejection],
        source: Callable[[], str] | None = None,
        replay: list[str] | None = None,
    ) -> None:
        if source is None:
            import io

            source = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace").readline
        self._source = source
        self._replay = list(replay or [])
        self._rejected = rejected

    def __aiter__(self) -> _StdinLines:
        return self

    def _next(self) -> tuple[str, Rejection | None]:
        """The next line that is not blank, and the answer to it if it is malformed."""
        while True:
            line = self._source()
            if not line or line.strip():
                return line, triage(line) if line else None

    async def __anext__(self) -> str:
        while True:
            if self._replay:  # never blank: the front keeps no blank line
                line = self._replay.pop(0)
                rejection = triage(line)
            else:
                line, rejection = await anyio.to_thread.run_sync(self._next, abandon_on_cancel=True)
            if not line:
                self._rejected.close()
                raise StopAsyncIteration
            if rejection is None:
                return line
            # The SDK would drop this line without a word: answer it instead.
            log.warning("malformed JSON-RPC on stdin: %s", rejection.describe())
            await self._rejected.send(rejection)


async def _drop_reply(
    replies: MemoryObjectReceiveStream[SessionMessage],
    write: MemoryObjectSendStream[SessionMessage],
    private_id: str,
) -> None:
    """Pass the SDK's messages on, except its answer to the front's replayed initialize."""
    from pai_core.sdkseam import message_id

    dropped = False
    async with replies, write:
        async for message in replies:
            if not dropped and message_id(message) == private_id:
                dropped = True
                if getattr(message.message, "error", None) is not None:
                    log.warning("the SDK refused the client's initialize the front answered")
                continue
            await write.send(message)


async def _serve_stdio(server: MCPServer[Any], handoff: Handoff | None = None) -> bool:
    """Serve until stdin closes (returns False) or a signal arrives (returns True)."""
    from mcp.server.stdio import stdio_server

    from pai_core.sdkseam import lowlevel as lowlevel_of

    signalled = False

    lowlevel = lowlevel_of(server)
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
        send_rejected, rejected = anyio.create_memory_object_stream[Rejection](64)
        if handoff is None:
            stdin = _StdinLines(send_rejected)
        else:
            stdin = _StdinLines(send_rejected, handoff.next_line, handoff.replay)
        async with stdio_server(stdin=stdin) as (read, write):  # type: ignore[arg-type]

            async def answer_rejected() -> None:
                from mcp.shared.message import SessionMessage
                from mcp.types import JSONRPCError, jsonrpc_message_adapter

                async with rejected:
                    async for rejection in rejected:
                        error = jsonrpc_message_adapter.validate_python(rejection.as_dict())
                        assert isinstance(error, JSONRPCError)
                        try:
                            await write.send(SessionMessage(error))
                        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                            return

            tg.start_soon(answer_rejected)
            out = write
            if handoff is not None and handoff.private_id is not None:
                from mcp.shared.message import SessionMessage

                out, replies = anyio.create_memory_object_stream[SessionMessage](0)
                tg.start_soon(_drop_reply, replies, write, handoff.private_id)
            await lowlevel.run(read, out, lowlevel.create_initialization_options())
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
    handoff: Handoff | None = None,
) -> None:
    """Run ``server`` until its client goes away or SIGTERM/SIGINT arrives; over stdio,
    ``handoff`` takes over the session a front began."""
    if transport == "stdio":
        if anyio.run(_serve_stdio, server, handoff):
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
