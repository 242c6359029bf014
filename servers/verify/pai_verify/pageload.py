"""Loading a page in the browser, and what each way of failing means for the caller.

Playwright raises a ``TimeoutError`` or a generic ``Error`` whose text carries Chromium's
``net::ERR_…`` code. :func:`load_error` turns each cause into its own PAI error and hint:

==========================================  ======================  ==============================
cause                                       error                   what to do
==========================================  ======================  ==============================
the host name does not resolve              NotFound (url)          check the host name
a port browsers refuse (9, 25, 6000…)       InvalidInput (url)      use a web port
nothing answers (refused, reset, no route)  BackendUnavailable      start the site / check port
TLS certificate rejected                    BackendUnavailable      ignore_https_errors for tests
the page does not finish loading in time    BackendUnavailable      retry; check it with http_check
``wait_for`` selector never appears         NotFound (wait_for)     check the selector
``wait_for`` is not a valid selector        InvalidInput            pass a CSS selector
the browser (or its tab) crashed            BackendUnavailable      retry: a new browser starts
anything else                               BackendUnavailable      the browser's own message
==========================================  ======================  ==============================
"""

from __future__ import annotations

from typing import Any

from pai_core.errors import BackendUnavailable, InvalidInput, NotFound, PaiError

__all__ = ["load", "load_error"]

_UNREACHABLE = (
    "ERR_CONNECTION_REFUSED",
    "ERR_CONNECTION_RESET",
    "ERR_CONNECTION_CLOSED",
    "ERR_CONNECTION_TIMED_OUT",
    "ERR_ADDRESS_UNREACHABLE",
    "ERR_ADDRESS_INVALID",
    "ERR_EMPTY_RESPONSE",
    "ERR_NETWORK_CHANGED",
    "ERR_INTERNET_DISCONNECTED",
    "ERR_TIMED_OUT",
)
_CRASHED = ("crash", "Target closed", "has been closed", "Browser closed", "disconnected")


def load_error(exc: BaseException, *, url: str, timeout_s: float, stage: str = "load") -> PaiError:
    """The PAI error for a failed page load (``stage`` is ``load`` or ``wait_for``)."""
    text = str(exc)
    first = text.splitlines()[0][:300] if text else type(exc).__name__
    timed_out = type(exc).__name__ == "TimeoutError"
    if stage == "wait_for" and not timed_out:
        return InvalidInput(
            f"wait_for is not a usable CSS selector ({first})",
            field="wait_for",
            hint="Pass a CSS selector such as '#app' or 'main img', or 'networkidle'.",
        )
    if stage == "wait_for":
        return NotFound(
            "the page loaded but the wait_for selector never appeared",
            field="wait_for",
            hint="Check the CSS selector (or leave wait_for empty); nothing was changed.",
        )
    if timed_out:
        return BackendUnavailable(
            f"the page did not finish loading within {timeout_s:g} s",
            hint="The site is slow or keeps a request open: retry, or check it with http_check.",
        )
    if any(marker in text for marker in _CRASHED):
        return BackendUnavailable(
            f"the browser crashed while loading the page ({first})",
            hint="Retry: a new browser is started for the next call.",
        )
    if "ERR_NAME_NOT_RESOLVED" in text:
        return NotFound(
            "the host name of the URL does not resolve",
            field="url",
            hint="Check the host name (and the DNS record, if it was just changed).",
        )
    if "ERR_UNSAFE_PORT" in text:
        return InvalidInput(
            "browsers refuse to open this port (it belongs to another protocol)",
            field="url",
            hint="Serve the site on a web port (80, 443, 8000-8999…); nothing was fetched.",
        )
    if any(code in text for code in _UNREACHABLE):
        code = next(c for c in _UNREACHABLE if c in text)
        return BackendUnavailable(
            f"nothing answers at the URL ({code})",
            hint="Check that the site is running and the port is right, then retry.",
        )
    if "ERR_CERT" in text or "ERR_SSL" in text:
        return BackendUnavailable(
            f"the site's TLS certificate was rejected ({first})",
            hint="Fix the certificate; for a test site pass ignore_https_errors=true.",
        )
    return BackendUnavailable(f"the page did not load: {first}")


async def load(page: Any, url: str, wait_for: str | None, *, timeout_s: float = 30.0) -> None:
    """Open ``url`` in ``page`` until ``load``/``networkidle`` or the ``wait_for`` selector."""
    state = "networkidle" if wait_for == "networkidle" else "load"
    try:
        await page.goto(url, wait_until=state, timeout=timeout_s * 1000)
    except Exception as exc:
        raise load_error(exc, url=url, timeout_s=timeout_s) from exc
    if wait_for and wait_for not in ("load", "networkidle"):
        try:
            await page.wait_for_selector(wait_for, timeout=min(timeout_s, 15.0) * 1000)
        except Exception as exc:
            raise load_error(exc, url=url, timeout_s=timeout_s, stage="wait_for") from exc
