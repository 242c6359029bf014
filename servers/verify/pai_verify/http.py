"""HTTP checks with httpx: status, redirects, timings, size, TLS certificate, expectations."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from pai_verify.models import Expectation, HttpCheckResult, TlsInfo

__all__ = ["HttpChecker", "tls_info"]

MAX_BODY = 5 * 2**20


def tls_info(host: str, port: int, timeout: float) -> TlsInfo | None:
    """The server's certificate (subject, issuer, expiry) and whether it verifies."""
    from cryptography import x509

    verified, error = True, None
    try:
        ctx = ssl.create_default_context()
        with (
            socket.create_connection((host, port), timeout=timeout) as sock,
            ctx.wrap_socket(sock, server_hostname=host),
        ):
            pass
    except ssl.SSLError as exc:
        verified, error = False, exc.reason or str(exc)
    except OSError as exc:
        return TlsInfo(
            subject="", issuer="", not_after="", days_to_expiry=0, verified=False, error=str(exc)
        )
    try:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with (
            socket.create_connection((host, port), timeout=timeout) as sock,
            ctx.wrap_socket(sock, server_hostname=host) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    except OSError as exc:
        return TlsInfo(
            subject="", issuer="", not_after="", days_to_expiry=0, verified=False, error=str(exc)
        )
    if not der:
        return None
    cert = x509.load_der_x509_certificate(der)
    not_after = cert.not_valid_after_utc
    return TlsInfo(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        not_after=not_after.isoformat(),
        days_to_expiry=(not_after - datetime.now(UTC)).days,
        verified=verified,
        error=error,
    )


class HttpChecker:
    """One pooled async client per server process."""

    def __init__(self, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self._clients: dict[bool, httpx.AsyncClient] = {}

    def _client(self, verify: bool) -> httpx.AsyncClient:
        if verify not in self._clients:
            self._clients[verify] = httpx.AsyncClient(
                verify=verify,
                timeout=self.timeout,
                follow_redirects=False,
                headers={"User-Agent": "pai-verify/0.1"},
                limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
            )
        return self._clients[verify]

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()

    async def check(
        self,
        url: str,
        *,
        expect_status: list[int] | None = None,
        expect_text: str | None = None,
        expect_header: dict[str, str] | None = None,
        timeout: float | None = None,
        follow_redirects: bool = True,
        verify_tls: bool = True,
        max_redirects: int = 10,
    ) -> HttpCheckResult:
        client = self._client(verify_tls)
        redirects: list[dict[str, Any]] = []
        started = time.perf_counter()
        current = url
        response: httpx.Response | None = None
        body = b""
        ttfb = None
        try:
            for _ in range(max_redirects + 1):
                req = client.build_request("GET", current, timeout=timeout or self.timeout)
                response = await client.send(req, stream=True)
                ttfb = (time.perf_counter() - started) * 1000
                if follow_redirects and response.is_redirect and "location" in response.headers:
                    redirects.append({"url": current, "status": response.status_code})
                    await response.aclose()
                    current = str(response.url.join(response.headers["location"]))
                    continue
                chunks = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size <= MAX_BODY:
                        chunks.append(chunk)
                body = b"".join(chunks)
                await response.aclose()
                break
        except (TimeoutError, httpx.HTTPError, OSError) as exc:
            tls = await self._tls(url) if url.startswith("https") else None
            checks = [
                Expectation(
                    name="reachable",
                    expected="response",
                    actual=f"{type(exc).__name__}: {exc}",
                    ok=False,
                )
            ]
            return HttpCheckResult(
                url=url,
                ok=False,
                status=None,
                final_url=None,
                redirects=redirects,
                ttfb_ms=None,
                total_ms=None,
                size_bytes=None,
                content_type=None,
                tls=tls,
                checks=checks,
                error=f"{type(exc).__name__}: {exc}",
            )
        total = (time.perf_counter() - started) * 1000
        assert response is not None
        checks = self._expectations(
            response, body, redirects, expect_status, expect_text, expect_header, follow_redirects
        )
        tls = await self._tls(url) if url.startswith("https") else None
        if tls and not tls.verified and verify_tls:
            checks.append(
                Expectation(
                    name="tls",
                    expected="valid certificate",
                    actual=tls.error or "unverified",
                    ok=False,
                )
            )
        return HttpCheckResult(
            url=url,
            ok=all(c.ok for c in checks),
            status=response.status_code,
            final_url=str(response.url),
            redirects=redirects,
            ttfb_ms=round(ttfb or 0, 2),
            total_ms=round(total, 2),
            size_bytes=len(body) if len(body) < MAX_BODY else None,
            content_type=response.headers.get("content-type"),
            tls=tls,
            checks=checks,
        )

    @staticmethod
    def _expectations(
        response: httpx.Response,
        body: bytes,
        redirects: list[dict[str, Any]],
        expect_status: list[int] | None,
        expect_text: str | None,
        expect_header: dict[str, str] | None,
        followed: bool,
    ) -> list[Expectation]:
        checks = []
        wanted = expect_status or list(range(200, 300))
        label = ",".join(map(str, expect_status)) if expect_status else "2xx"
        checks.append(
            Expectation(
                name="status",
                expected=label,
                actual=str(response.status_code),
                ok=response.status_code in wanted,
            )
        )
        if expect_text is not None:
            text = body.decode(response.encoding or "utf-8", errors="replace")
            checks.append(
                Expectation(
                    name="text",
                    expected=f"contains {expect_text!r}",
                    actual="found" if expect_text in text else "not found",
                    ok=expect_text in text,
                )
            )
        for key, value in (expect_header or {}).items():
            got = response.headers.get(key)
            checks.append(
                Expectation(
                    name=f"header {key}",
                    expected=value,
                    actual=str(got),
                    ok=got is not None and value.lower() in got.lower(),
                )
            )
        return checks

    async def _tls(self, url: str) -> TlsInfo | None:
        parts = urlsplit(url)
        if not parts.hostname:
            return None
        return await asyncio.to_thread(tls_info, parts.hostname, parts.port or 443, self.timeout)
