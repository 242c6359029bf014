"""One headless Chromium per server process, started on first use, restarted if it dies.

Each call gets a fresh page (in a long-lived context), closed on every exit path. Chromium comes
from the system (``chromium_path``): Playwright's own browser download is never used. Every
browser process carries the environment marker ``PAI_VERIFY_BROWSER=<token>`` so its processes
can be found (and tests can prove none is left behind).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pai_core.errors import BackendUnavailable, MissingDependency

__all__ = ["BrowserPool", "PageEvents", "browser_pids"]

log = logging.getLogger(__name__)
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-dev-shm-usage",
]


def browser_pids(token: str) -> list[int]:
    """PIDs of processes whose environment carries this pool's marker."""
    marker = f"PAI_VERIFY_BROWSER={token}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@dataclass
class PageEvents:
    """What a page did while it loaded."""

    console_errors: list[str] = field(default_factory=list)
    responses: dict[str, int] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    image_responses: dict[str, Any] = field(default_factory=dict)  # url → Playwright Response

    def record(self, response: Any) -> None:
        self.responses[response.url] = response.status
        if response.request.resource_type == "image":
            self.image_responses[response.url] = response


def _console(message: Any, events: PageEvents) -> None:
    if message.type == "error":
        events.console_errors.append(message.text)


class BrowserPool:
    def __init__(self, executable: str) -> None:
        self.executable = executable
        self.token = secrets.token_hex(8)
        self._pw: Any = None
        self._browser: Any = None
        self._lock = asyncio.Lock()
        self._contexts: dict[tuple[int, bool], Any] = {}
        self.launches = 0

    async def _ensure(self) -> Any:
        async with self._lock:
            if self._browser is not None and self._browser.is_connected():
                return self._browser
            if self._browser is not None:
                log.warning("browser disconnected: starting a new one")
                await self._close_browser()
            if not Path(self.executable).exists():
                raise BackendUnavailable(
                    f"Chromium not found at {self.executable}",
                    hint="apt-get install chromium, or set PAI_VERIFY_CHROMIUM_PATH.",
                )
            if self._pw is None:
                try:
                    from playwright.async_api import async_playwright
                except ModuleNotFoundError as exc:
                    raise MissingDependency(
                        "Playwright is not installed", extra="browser", package="pai-verify"
                    ) from exc
                self._pw = await async_playwright().start()
            self._browser = await self._pw.chromium.launch(
                executable_path=self.executable,
                headless=True,
                args=ARGS,
                env={**os.environ, "PAI_VERIFY_BROWSER": self.token},
            )
            self.launches += 1
            return self._browser

    async def _context(self, ignore_https_errors: bool) -> Any:
        """One long-lived context per TLS mode; pages are per call."""
        browser = await self._ensure()
        key = (id(browser), ignore_https_errors)
        context = self._contexts.get(key)
        if context is None:
            context = await browser.new_context(ignore_https_errors=ignore_https_errors)
            # Every site is asked for /favicon.ico; a site without one is not broken.
            await context.route("**/favicon.ico", lambda route: route.fulfill(status=204, body=""))
            self._contexts = {k: v for k, v in self._contexts.items() if k[0] == id(browser)}
            self._contexts[key] = context
        return context

    @asynccontextmanager
    async def page(
        self, *, width: int = 1280, height: int = 800, ignore_https_errors: bool = False
    ) -> AsyncIterator[tuple[Any, PageEvents]]:
        """A fresh page, closed on every exit path; retried once on a new browser if it crashed."""
        for attempt in (1, 2):
            try:
                context = await self._context(ignore_https_errors)
                page = await context.new_page()
                break
            except Exception as exc:
                if attempt == 2 or (self._browser is not None and self._browser.is_connected()):
                    raise BackendUnavailable(f"the browser failed: {exc}") from exc
        events = PageEvents()
        try:
            await page.set_viewport_size({"width": width, "height": height})
            page.on("console", lambda m: _console(m, events))
            page.on("pageerror", lambda e: events.console_errors.append(str(e)))
            page.on("response", events.record)
            page.on(
                "requestfailed", lambda r: events.failures.__setitem__(r.url, r.failure or "failed")
            )
            yield page, events
        finally:
            try:
                await page.close()
            except Exception as exc:  # a crashed browser cannot close its page
                log.info("page close failed: %s", exc)

    async def _close_browser(self) -> None:
        self._contexts.clear()
        browser, self._browser = self._browser, None
        if browser is not None:
            try:
                await browser.close()
            except Exception as exc:
                log.info("browser close failed: %s", exc)

    async def close(self) -> None:
        await self._close_browser()
        if self._pw is not None:
            await self._pw.stop()
            self._pw = None
