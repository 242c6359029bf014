"""What a page did while one check used it: console errors, responses, failed requests, and
which requests are still in flight (so a check can wait for the page to settle on events, not on
a fixed quiet period)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

__all__ = ["UNTRACKED_TYPES", "PageEvents"]

# Requests that may stay open for the life of the page: waiting for them would never end.
UNTRACKED_TYPES = frozenset({"websocket", "eventsource", "media"})


@dataclass
class PageEvents:
    """Filled by the page's event handlers while it is attached (see :meth:`attach`)."""

    console_errors: list[str] = field(default_factory=list)
    responses: dict[str, int] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    image_responses: dict[str, Any] = field(default_factory=dict)  # url → Playwright Response
    origins: set[str] = field(default_factory=set)  # every http(s) origin the page asked
    inflight: set[Any] = field(default_factory=set)
    _quiet: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._quiet.set()

    def record(self, response: Any) -> None:
        self.responses[response.url] = response.status
        if response.request.resource_type == "image":
            self.image_responses[response.url] = response

    def started(self, request: Any) -> None:
        parts = urlsplit(request.url)
        if parts.scheme in ("http", "https"):
            self.origins.add(f"{parts.scheme}://{parts.netloc}")
        if request.resource_type not in UNTRACKED_TYPES:
            self.inflight.add(request)
            self._quiet.clear()

    def finished(self, request: Any) -> None:
        self.inflight.discard(request)
        if not self.inflight:
            self._quiet.set()

    def failed(self, request: Any) -> None:
        self.failures[request.url] = request.failure or "failed"
        self.finished(request)

    def console(self, message: Any) -> None:
        if message.type == "error":
            self.console_errors.append(message.text)

    async def quiet(self, timeout_s: float) -> bool:
        """Wait until no tracked request is in flight; False if it did not happen in time."""
        try:
            await asyncio.wait_for(self._quiet.wait(), max(timeout_s, 0.0))
        except TimeoutError:
            return False
        return True

    def attach(self, page: Any) -> Callable[[], None]:
        """Listen to ``page``; returns the function that removes exactly these listeners."""
        handlers: dict[str, Callable[[Any], None]] = {
            "console": self.console,
            "pageerror": lambda error: self.console_errors.append(str(error)),
            "request": self.started,
            "requestfinished": self.finished,
            "requestfailed": self.failed,
            "response": self.record,
        }
        for name, handler in handlers.items():
            page.on(name, handler)

        def detach() -> None:
            for name, handler in handlers.items():
                page.remove_listener(name, handler)

        return detach
