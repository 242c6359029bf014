"""The one way this server talks to GitLab: python-gitlab's HTTP layer, retries, clear errors.

Every request goes through :class:`GitlabClient`, which calls ``gitlab.Gitlab.http_request``
(python-gitlab does the authentication, URL building, TLS with the configured CA bundle and
JSON handling) and adds what python-gitlab leaves to the caller:

- retries: a 429 waits for its ``Retry-After`` (capped; a longer wait is an error instead),
  5xx answers and dropped connections back off exponentially. A POST is retried after a 429
  only (GitLab did not process it); after a 5xx a POST may have been applied, so the error
  says to look before trying again;
- errors: 401, 403, 404, 409 … become PAI errors that name the project, what was attempted
  and the permission it needs, and say whether anything was changed;
- :class:`Request`: a mutation is built as a value first, so ``dry_run`` can return exactly
  what would be sent.

The proxy and CA-bundle variables requests reads are read once, when the client is first
used, not on every request (see :func:`read_environment_once`). python-gitlab is imported
on first use (it takes ~0.2 s to import).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from pai_core.errors import (
    BackendUnavailable,
    Conflict,
    InvalidInput,
    NotFound,
    PaiError,
    PolicyDenied,
)
from pai_core.log import redact

if TYPE_CHECKING:
    import gitlab

__all__ = ["GitlabClient", "Page", "Request", "enc", "read_environment_once"]

log = logging.getLogger(__name__)
_TRANSIENT = frozenset({500, 502, 503, 504, 520, 521, 522, 523, 524})


def enc(value: str | int) -> str:
    """A project path or file path as one URL path segment (``group/app`` → ``group%2Fapp``)."""
    return quote(str(value), safe="")


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP request to GitLab's REST v4 API, as it will be sent."""

    method: str
    path: str
    body: dict[str, Any] | None = None
    query: dict[str, Any] = field(default_factory=dict)

    def describe(self, base_url: str) -> dict[str, Any]:
        """What ``dry_run`` shows: method, full URL, query and body (the token is a header
        and is never shown)."""
        return {
            "method": self.method.upper(),
            "url": f"{base_url.rstrip('/')}/api/v4{self.path}",
            "query": dict(self.query),
            "body": self.body,
        }


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a listing with GitLab's pagination headers."""

    items: list[dict[str, Any]]
    page: int
    per_page: int
    total: int | None
    next_page: int | None


@dataclass(frozen=True, slots=True)
class Op:
    """What a request is for, so an error can say it in words."""

    what: str
    project: str | None = None
    permission: str = "read access (read_api scope, Guest role or more)"
    mutation: bool = False


class GitlabClient:
    """python-gitlab's client with PAI's retries and errors; thread-safe for one process."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        ca_bundle: str | None = None,
        timeout_s: float = 30.0,
        max_retries: int = 4,
        max_retry_wait_s: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = url.rstrip("/")
        self._token = token
        self._ca_bundle = ca_bundle
        self._timeout = timeout_s
        self.max_retries = max_retries
        self.max_retry_wait_s = max_retry_wait_s
        self._sleep = sleep
        self._gl: gitlab.Gitlab | None = None
        self._lock = threading.Lock()
        self._seen = threading.local()
        self.retries = 0  # retries made so far (for health and tests)

    # ------------------------------------------------------------------ plumbing
    @property
    def gl(self) -> gitlab.Gitlab:
        """The python-gitlab client, created on first use."""
        with self._lock:
            if self._gl is None:
                import gitlab

                gl = gitlab.Gitlab(
                    self.url,
                    private_token=self._token,
                    ssl_verify=self._ca_bundle or True,
                    timeout=self._timeout,
                    retry_transient_errors=False,
                )
                gl.session.hooks["response"].append(self._remember_headers)
                read_environment_once(gl)
                self._gl = gl
            return self._gl

    def _remember_headers(self, response: Any, *args: Any, **kwargs: Any) -> None:
        self._seen.retry_after = response.headers.get("Retry-After")

    def _http(self, method: str, path: str, query: dict[str, Any], body: Any, raw: bool) -> Any:
        response = self.gl.http_request(
            method,
            path,
            query_data=query,
            post_data=body,
            obey_rate_limit=False,
            retry_transient_errors=False,
            max_retries=0,
        )
        if raw:
            return response
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def call(self, req: Request, op: Op, *, raw: bool = False) -> Any:
        """Send ``req`` with retries; map every failure onto a PAI error that names ``op``."""
        import gitlab.exceptions as gexc
        import requests

        attempt = 0
        while True:
            self._seen.retry_after = None
            try:
                return self._http(req.method, req.path, req.query, req.body, raw)
            except (gexc.GitlabHttpError, gexc.GitlabAuthenticationError) as exc:
                code = exc.response_code or 0
                wait = self._retry_wait(code, attempt, req.method)
                if wait is None:
                    raise _mapped(exc, code, op) from None
            except (requests.ConnectionError, requests.Timeout) as exc:
                if req.method.lower() == "post" or attempt >= self.max_retries:
                    raise BackendUnavailable(
                        f"cannot reach GitLab at {self.url} to {op.what}: {type(exc).__name__}",
                        hint=_unsure_hint(op, req.method)
                        or "Check PAI_GITLAB_URL and the network, then retry.",
                    ) from None
                wait = min(2.0**attempt * 0.25, 8.0)
            attempt += 1
            self.retries += 1
            log.info("retrying %s %s in %.2fs (attempt %d)", req.method, req.path, wait, attempt)
            self._sleep(wait)

    def _retry_wait(self, code: int, attempt: int, method: str) -> float | None:
        if attempt >= self.max_retries:
            return None
        if code == 429:
            header = getattr(self._seen, "retry_after", None)
            try:
                wait = float(header) if header is not None else 2.0**attempt * 0.5
            except ValueError:
                wait = 2.0**attempt * 0.5
            return wait if wait <= self.max_retry_wait_s else None
        if code in _TRANSIENT and method.lower() != "post":
            return min(2.0**attempt * 0.25, 8.0)
        return None

    # ------------------------------------------------------------------ verbs
    def get(self, path: str, op: Op, **query: Any) -> Any:
        return self.call(Request("get", path, None, query), op)

    def get_text(self, path: str, op: Op, **query: Any) -> bytes:
        response = self.call(Request("get", path, None, query), op, raw=True)
        return bytes(response.content)

    def page(self, path: str, op: Op, *, page: int = 1, per_page: int = 20, **query: Any) -> Page:
        """One page of a listing (GitLab's ``x-total`` / ``x-next-page`` headers read)."""
        query = {**query, "page": page, "per_page": per_page}
        response = self.call(Request("get", path, None, query), op, raw=True)
        headers = response.headers
        total = headers.get("x-total")
        nxt = headers.get("x-next-page")
        return Page(
            items=list(response.json()),
            page=page,
            per_page=per_page,
            total=int(total) if total else None,
            next_page=int(nxt) if nxt else None,
        )

    def send(self, req: Request, op: Op) -> Any:
        return self.call(req, op)


def read_environment_once(gl: gitlab.Gitlab) -> None:
    """Read the proxy and CA-bundle variables once, as requests would on every request.

    A requests session that trusts the environment scans every variable for proxies on each
    request (~80 µs, as much as the rest of a loopback request's client side). The answer
    for the one GitLab URL this client talks to is taken once, with requests' own
    ``merge_environment_settings``, and kept on the session: ``HTTPS_PROXY``, ``NO_PROXY``,
    ``REQUESTS_CA_BUNDLE`` … still apply, as read when the first request is made. (The other
    thing a trusting session reads, ``~/.netrc``, is never used: the token authenticates.)
    """
    session = gl.session
    env = session.merge_environment_settings(gl.url, {}, None, gl.ssl_verify, None)
    session.proxies.update(env["proxies"])
    gl.ssl_verify = env["verify"]
    session.trust_env = False


def _unsure_hint(op: Op, method: str) -> str | None:
    if op.mutation and method.lower() == "post":
        return "The request may or may not have been applied: look (get/search) before trying again"
    return None


def _mapped(exc: Any, code: int, op: Op) -> PaiError:
    message = redact(str(getattr(exc, "error_message", "") or ""))[:500]
    where = f" on project {op.project}" if op.project else ""
    unchanged = "nothing was changed" if op.mutation else "nothing was read"
    if code == 401:
        return BackendUnavailable(
            f"GitLab refused the token (401 Unauthorized) while trying to {op.what}{where}",
            hint="Set a valid, unexpired token in PAI_GITLAB_TOKEN or PAI_GITLAB_TOKEN_FILE "
            f"and restart the server; {unchanged}.",
        )
    if code == 403:
        return PolicyDenied(
            f"GitLab denied {op.what}{where} (403 Forbidden: {message or 'no reason given'})",
            rule="gitlab-permission",
            hint=f"The token needs {op.permission}; {unchanged}.",
        )
    if code == 404:
        return NotFound(
            f"GitLab found nothing to {op.what}{where} (404: {message or 'Not Found'})",
            hint="Check the project path and the id, and that the token can see the project "
            f"({op.permission}); {unchanged}.",
        )
    if code in (405, 406, 409, 412, 422) or (code == 400 and _is_conflict(message)):
        return Conflict(
            f"GitLab refused to {op.what}{where} ({code}: {message})",
            hint=f"Re-read the current state, then decide and call again; {unchanged}.",
        )
    if code == 400:
        return InvalidInput(
            f"GitLab rejected the request to {op.what}{where} (400: {message})",
            hint=f"Fix the arguments and call again; {unchanged}.",
        )
    if code == 429:
        return BackendUnavailable(
            f"GitLab is rate-limiting this token (429) while trying to {op.what}{where}",
            hint=f"Wait a minute and retry; {unchanged}.",
        )
    if code >= 500:
        hint = _unsure_hint(op, "post" if op.mutation else "get") or (
            f"GitLab is failing; retry later; {unchanged}."
        )
        return BackendUnavailable(
            f"GitLab answered {code} while trying to {op.what}{where}: {message}", hint=hint
        )
    return BackendUnavailable(f"GitLab answered {code} while trying to {op.what}{where}: {message}")


def _is_conflict(message: str) -> bool:
    text = message.lower()
    return any(
        s in text
        for s in ("changed since", "already exists", "doesn't exist", "does not exist", "moved")
    )
