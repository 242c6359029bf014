"""Logging to stderr only (stdout is the protocol in stdio mode), with secrets redacted.

Two kinds of redaction: values registered with :func:`register_secret` (a TSIG secret, a
bearer token) are replaced wherever they appear, and ``key=value`` / ``"key": "value"`` pairs
whose key looks secret (password, token, secret, authorization, api key) are masked.
"""

from __future__ import annotations

import logging
import re
import sys
import threading

__all__ = ["REDACTED", "configure_logging", "redact", "register_secret"]

REDACTED = "***"

_SECRET_KEY = re.compile(
    r"(?i)(\b(?:password|passwd|secret|token|api[_-]?key|authorization|private[_-]?key)\b"
    r"[\"']?\s*[:=]\s*[\"']?)(?:Bearer\s+)?([^\s\"',;}]+)"
)
_secrets: set[str] = set()
_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Redact this exact value from every log record from now on (ignored if short)."""
    if value and len(value) >= 6:
        with _lock:
            _secrets.add(value)


def redact(text: str) -> str:
    """Return ``text`` with registered secrets and secret-looking pairs masked."""
    with _lock:
        known = sorted(_secrets, key=len, reverse=True)
    for value in known:
        text = text.replace(value, REDACTED)
    return _SECRET_KEY.sub(lambda m: m.group(1) + REDACTED, text)


class _RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def configure_logging(level: str = "INFO") -> None:
    """Send every log record to stderr, redacted. Safe to call more than once."""
    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        _RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
    )
    handler.set_name("pai-stderr")
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # The SDK installs its own handlers on import; route everything through ours.
    for name in ("mcp", "uvicorn", "uvicorn.error", "uvicorn.access", "httpx"):
        lg = logging.getLogger(name)
        lg.handlers.clear()
        lg.propagate = True
    logging.getLogger("uvicorn.access").setLevel("WARNING")
    logging.getLogger("httpx").setLevel("WARNING")
