"""Messages the SDK would drop without a word, answered with the JSON-RPC error they deserve.

The SDK's stdio reader drops a line that is not JSON, or that nests deeper than pydantic's
limit, and its HTTP transports accept ``"id": NaN`` or ``"id": {}`` as a notification (202,
never a reply): the client waits for its own timeout. :func:`triage` looks at one message
before the SDK does and returns the :class:`Rejection` to send back, or None when the SDK
can take it:

- not JSON (or nested past any parser's limit): ``-32700`` Parse error, ``id: null``;
- JSON, but not one JSON-RPC message object (an array, a bad ``jsonrpc``, an ``id`` that is
  not a string or an integer): ``-32600`` Invalid Request, ``id: null``;
- a well-formed envelope whose body the SDK cannot validate (nested too deeply, a field of the
  wrong type): ``-32600`` Invalid Request for that ``id``.

The transports in :mod:`pai_core.runtime` answer rejections on the same channel a reply
would take and log one short line for each (rate-limited on HTTP).
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Any

__all__ = ["INVALID_REQUEST", "PARSE_ERROR", "RateLimitedLog", "Rejection", "triage"]

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
_MAX_TEXT = 200


@dataclass(frozen=True, slots=True)
class Rejection:
    """The JSON-RPC error answer to one malformed message."""

    id: str | int | None
    code: int
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "jsonrpc": "2.0",
            "id": self.id,
            "error": {"code": self.code, "message": self.message},
        }

    def as_json(self) -> bytes:
        return json.dumps(self.as_dict(), separators=(",", ":")).encode()

    def describe(self) -> str:
        """One log line: the code, the id and why (never the message's content)."""
        return f"answered {self.code} for id {self.id!r}: {self.message}"


def _usable_id(value: Any) -> str | int | None:
    if isinstance(value, str):
        return value[:_MAX_TEXT]
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def _valid_id(value: Any) -> bool:
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(value, str | int):
        return True
    return isinstance(value, float) and math.isfinite(value) and value.is_integer()


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT] + "…"


def triage(data: bytes | str) -> Rejection | None:
    """None when ``data`` is one JSON-RPC message the SDK will accept, else the answer."""
    import pydantic_core
    from mcp.types import jsonrpc_message_adapter
    from pydantic import ValidationError

    try:
        obj = pydantic_core.from_json(data)
    except ValueError as exc:
        try:  # pydantic stops at a nesting depth Python's own parser handles: learn the id
            obj = json.loads(data)
        except (ValueError, RecursionError):
            return Rejection(None, PARSE_ERROR, f"Parse error: {_short(str(exc))}")
        deep = "recursion limit" in str(exc)
        why = "the message is nested too deeply" if deep else _short(str(exc))
        given = obj.get("id") if isinstance(obj, dict) else None
        return Rejection(
            _usable_id(given),
            INVALID_REQUEST,
            f"Invalid Request: {why}; send it with fewer levels of nesting",
        )
    if not isinstance(obj, dict):
        kind = "a batch (array)" if isinstance(obj, list) else f"a JSON {type(obj).__name__}"
        return Rejection(
            None, INVALID_REQUEST, f"Invalid Request: expected one message object, got {kind}"
        )
    if "id" in obj and not _valid_id(obj["id"]):
        return Rejection(
            None,
            INVALID_REQUEST,
            f"Invalid Request: id must be a string or an integer, not {_short(repr(obj['id']))}",
        )
    try:
        jsonrpc_message_adapter.validate_python(obj, by_name=False)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"][1:]) or "message"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        return Rejection(
            _usable_id(obj.get("id")),
            INVALID_REQUEST,
            f"Invalid Request: {_short(where)}: {_short(str(first['msg']))}{more}",
        )
    except RecursionError:
        return Rejection(
            _usable_id(obj.get("id")),
            INVALID_REQUEST,
            "Invalid Request: the message is nested too deeply; send it with fewer levels",
        )
    return None


class RateLimitedLog:
    """At most one line per ``window_s`` for each kind of event; the next line says how many
    were held back, so a flood of rejected requests cannot flood the log."""

    def __init__(self, logger: logging.Logger, window_s: float = 10.0) -> None:
        self._log = logger
        self._window = window_s
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()

    def warning(self, kind: str, message: str, *args: object) -> bool:
        """Log ``message`` unless a line of ``kind`` went out within the window."""
        now = time.monotonic()
        with self._lock:
            last = self._last.get(kind)
            if last is not None and now - last < self._window:
                self._held[kind] = self._held.get(kind, 0) + 1
                return False
            self._last[kind] = now
            held = self._held.pop(kind, 0)
        suffix = f" ({held} more like it in the last {self._window:g} s not logged)" if held else ""
        self._log.warning(message + suffix, *args)
        return True
