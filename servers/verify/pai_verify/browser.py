"""One headless Chromium per server process, started on first use, restarted if it dies, and a
small pool of pages that checks reuse.

Opening a page costs Chromium a new renderer (~150 ms); navigating a page that is already open
does not. So each check takes a pooled *slot*, a page in a browser context of its own, and gives
it back when done. Before a slot is used again it is reset in the background, off the caller's
path: the page goes to ``about:blank``, pages it opened are closed, ``window.name`` is cleared,
every origin it asked has its storage wiped (local and session storage, IndexedDB, cache
storage, service workers), and the context's cookies and permissions are cleared. Listeners are
per use, so a check sees only its own events; dialogs have no listener and are dismissed. A
slot whose reset fails (a crashed tab, a dead browser) is closed instead of reused. The
context's route for ``favicon.ico`` also turns off its HTTP cache, so every check fetches what
the site serves now.

Chromium comes from the system (``chromium_path``): Playwright's own browser download is never
used. Every browser process carries the environment marker ``PAI_VERIFY_BROWSER=<token>`` so
its processes can be found (and tests can prove none is left behind).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import secrets
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pai_core.errors import BackendUnavailable, MissingDependency
from pai_verify.events import PageEvents

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
IDLE_SLOTS = 4  # per TLS mode; more run at once when asked, the extra ones are closed after
# Every wait on Chromium has a deadline, so a tab or browser that stops answering turns into an
# error (or a discarded slot) instead of a call that never returns.
RESET_TIMEOUT_S = 10.0
OPEN_TIMEOUT_S = 20.0  # a new context, page and CDP session
CAPTURE_TIMEOUT_S = 5.0  # Chromium's direct capture, before falling back to Playwright's
SHOT_TIMEOUT_S = 20.0  # Playwright's own capture (it waits for a frame)
CLOSE_TIMEOUT_S = 5.0  # closing a context or the browser


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
class _Slot:
    browser: Any
    context: Any
    page: Any
    cdp: Any
    tls_lax: bool
    size: tuple[int, int] = (0, 0)


class BrowserPool:
    def __init__(self, executable: str) -> None:
        self.executable = executable
        self.token = secrets.token_hex(8)
        self._pw: Any = None
        self._browser: Any = None
        self._lock = asyncio.Lock()
        self._idle: dict[bool, list[_Slot]] = {False: [], True: []}
        # Tasks that will put a slot into _idle (a reset, or a spare being opened) → TLS mode.
        self._pending: dict[asyncio.Task[None], bool] = {}
        self._live: dict[bool, int] = {False: 0, True: 0}
        self._in_use: dict[Any, _Slot] = {}  # page → its slot, while a check holds it
        self.launches = 0
        self.slots_opened = 0

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

    async def _open(self, browser: Any, tls_lax: bool) -> _Slot:
        async with asyncio.timeout(OPEN_TIMEOUT_S):
            context = await browser.new_context(ignore_https_errors=tls_lax)
        try:
            async with asyncio.timeout(OPEN_TIMEOUT_S):
                # Every site is asked for /favicon.ico; a site without one is not broken.
                await context.route(
                    "**/favicon.ico", lambda route: route.fulfill(status=204, body="")
                )
                page = await context.new_page()
                cdp = await context.new_cdp_session(page)
        except BaseException:
            await self._close_context(context)
            raise
        self.slots_opened += 1
        self._live[tls_lax] += 1
        return _Slot(browser, context, page, cdp, tls_lax)

    async def _take(self, tls_lax: bool) -> _Slot:
        """An idle slot of the running browser, else one being reset, else a new one.

        The first check also opens a spare in the background, so that back-to-back checks
        alternate between two slots and never wait for the other one's reset."""
        browser = await self._ensure()
        while True:
            idle = self._idle[tls_lax]
            while idle:
                slot = idle.pop()
                if slot.browser is browser and not slot.page.is_closed():
                    if not idle and self._live[tls_lax] < 2:
                        self._later(self._spare(browser, tls_lax), tls_lax)
                    return slot
                await self._discard(slot)
            pending = [t for t, mode in self._pending.items() if mode == tls_lax]
            if not pending:
                slot = await self._open(browser, tls_lax)
                if self._live[tls_lax] < 2:
                    self._later(self._spare(browser, tls_lax), tls_lax)
                return slot
            await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)

    def _later(self, work: Coroutine[Any, Any, None], tls_lax: bool) -> None:
        task = asyncio.create_task(work)
        self._pending[task] = tls_lax
        task.add_done_callback(self._pending.pop)

    async def _spare(self, browser: Any, tls_lax: bool) -> None:
        try:
            self._keep(await self._open(browser, tls_lax))
        except Exception as exc:  # the next check opens its own
            log.info("opening a spare page failed: %s", exc)

    @asynccontextmanager
    async def page(
        self, *, width: int = 1280, height: int = 800, ignore_https_errors: bool = False
    ) -> AsyncIterator[tuple[Any, PageEvents]]:
        """A clean page for one check; retried once on a new browser if the browser crashed."""
        for attempt in (1, 2):
            try:
                slot = await self._take(ignore_https_errors)
                if slot.size != (width, height):
                    await slot.page.set_viewport_size({"width": width, "height": height})
                    slot.size = (width, height)
                break
            except Exception as exc:
                if attempt == 2 or (self._browser is not None and self._browser.is_connected()):
                    raise BackendUnavailable(f"the browser failed: {exc}") from exc
        events = PageEvents()
        detach = events.attach(slot.page)
        self._in_use[slot.page] = slot
        try:
            yield slot.page, events
        finally:
            detach()
            del self._in_use[slot.page]
            self._later(self._reset(slot, sorted(events.origins)), slot.tls_lax)

    async def screenshot(self, page: Any, *, full_page: bool = False) -> bytes:
        """A PNG of ``page`` (one of ours, in use). The viewport is captured by Chromium in one
        call, without Playwright's caret hiding and font wait (the page has loaded already)."""
        if full_page:
            data: bytes = await page.screenshot(
                full_page=True, type="png", timeout=SHOT_TIMEOUT_S * 1000
            )
            return data
        try:
            async with asyncio.timeout(CAPTURE_TIMEOUT_S):
                shot = await self._in_use[page].cdp.send(
                    "Page.captureScreenshot", {"format": "png"}
                )
        except Exception as exc:
            # "Unable to capture screenshot", or no answer: the compositor has not produced a
            # frame for this page yet (seen right after a pooled page was reused). Playwright's
            # own call waits for one.
            log.debug("direct capture failed (%r); taking it through Playwright", exc)
            data = await page.screenshot(type="png", timeout=SHOT_TIMEOUT_S * 1000)
            return data
        return base64.b64decode(shot["data"])

    async def _reset(self, slot: _Slot, origins: list[str]) -> None:
        """Make the slot as clean as a new one, then put it back (or close it)."""
        try:
            async with asyncio.timeout(RESET_TIMEOUT_S):
                await slot.page.goto("about:blank")
                await asyncio.gather(
                    *(other.close() for other in slot.context.pages if other is not slot.page),
                    slot.page.evaluate("window.name = ''"),
                    *(
                        slot.cdp.send(
                            "Storage.clearDataForOrigin", {"origin": o, "storageTypes": "all"}
                        )
                        for o in origins
                    ),
                    slot.context.clear_cookies(),
                    slot.context.clear_permissions(),
                    slot.cdp.send("Page.resetNavigationHistory"),
                )
        except Exception as exc:  # a crashed tab or browser: this slot is done
            log.info("page reset failed, closing it: %s", exc)
            await self._discard(slot)
            return
        self._keep(slot)

    def _keep(self, slot: _Slot) -> None:
        idle = self._idle[slot.tls_lax]
        if slot.browser is self._browser and len(idle) < IDLE_SLOTS:
            idle.append(slot)
        else:
            self._later(self._discard(slot), slot.tls_lax)

    async def _discard(self, slot: _Slot) -> None:
        self._live[slot.tls_lax] -= 1
        await self._close_context(slot.context)

    @staticmethod
    async def _close_context(context: Any) -> None:
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await context.close()
        except Exception as exc:  # a dead or stuck browser cannot close its context
            log.info("context close failed: %r", exc)

    async def _close_browser(self) -> None:
        slots = self._idle[False] + self._idle[True]
        self._idle = {False: [], True: []}
        browser, self._browser = self._browser, None
        for slot in slots:
            await self._discard(slot)
        if browser is not None:
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await browser.close()
            except Exception as exc:  # Playwright's driver stop below ends its process
                log.info("browser close failed: %r", exc)

    async def close(self) -> None:
        # Resets and spares end within their own deadlines; this one is the backstop.
        try:
            async with asyncio.timeout(RESET_TIMEOUT_S + OPEN_TIMEOUT_S):
                while self._pending:
                    await asyncio.gather(*self._pending, return_exceptions=True)
        except TimeoutError:
            log.warning("page work still running at close: cancelling it")
            for task in list(self._pending):
                task.cancel()
            await asyncio.gather(*self._pending, return_exceptions=True)
        await self._close_browser()
        if self._pw is not None:
            await self._pw.stop()
            self._pw = None
