"""The verify MCP server: tool declarations only; logic lives in :mod:`pai_verify.service`."""

from __future__ import annotations

import base64
import json
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated, Any

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.types import CallToolResult, ImageContent, TextContent
from pydantic import BaseModel, Field

from pai_core.annotations import tool_annotations
from pai_core.app import add_health_tool, create_server, tool
from pai_verify import __version__
from pai_verify.models import (
    HttpCheckResult,
    ImageCount,
    ManyResult,
    ScreenshotResult,
    Verdict,
    VisualDiffResult,
    WaitResult,
)
from pai_verify.settings import VerifySettings

if TYPE_CHECKING:  # httpx and the browser code load with the first tool call
    from pai_verify.service import VerifyService

__all__ = ["build_server", "build_service"]

INSTRUCTIONS = """Proves from outside that a deployment works: HTTP checks (status, redirects,
TLS expiry, latency), screenshots, image counts, visual diffs, and verify_deployment, one
pass/fail verdict with evidence. Read-only: it never changes the site. Large artifacts
(screenshots, diffs) are written to files and returned as paths."""

LOOKS = tool_annotations(read_only=True, open_world=True)
Url = Annotated[str, Field(description="http(s) URL to check.")]


class CheckIn(BaseModel):
    url: str
    expect_status: list[int] | None = None
    expect_text: str | None = None
    timeout: float | None = None


def _probe(settings: VerifySettings, pool: dict[str, VerifyService]) -> dict[str, Any]:
    from pathlib import Path

    chromium = Path(settings.chromium_path)
    ok = chromium.exists()
    details: dict[str, Any] = {
        "chromium": str(chromium),
        "artifacts": str(settings.resolved_artifact_dir),
    }
    if "svc" in pool:
        details["browser_launches"] = pool["svc"].browser.launches
    return {
        "backend": "httpx+chromium",
        "configured": True,
        "status": "ok" if ok else "degraded",
        "problems": []
        if ok
        else [f"{chromium} not found: browser tools unavailable (apt-get install chromium)"],
        "details": details,
    }


def build_service(settings: VerifySettings) -> VerifyService:
    from pai_core.audit import AuditLog
    from pai_core.memory.record import ChangeRecorder, PredicateSpec
    from pai_verify.artifacts import ArtifactStore
    from pai_verify.browser import BrowserPool
    from pai_verify.http import HttpChecker
    from pai_verify.service import VerifyService
    from pai_verify.urls import UrlPolicy

    return VerifyService(
        UrlPolicy(tuple(settings.allow_hosts), tuple(settings.deny_hosts)),
        HttpChecker(settings.http_timeout_s),
        BrowserPool(settings.chromium_path),
        ArtifactStore(
            settings.resolved_artifact_dir, settings.artifact_max_age_s, settings.artifact_max_bytes
        ),
        max_concurrency=settings.max_concurrency,
        inline_max=settings.inline_image_max_bytes,
        page_timeout_s=settings.page_timeout_s,
        audit=AuditLog(settings.audit_log or settings.data_path / "audit.jsonl"),
        recorder=ChangeRecorder.from_settings(
            settings,
            predicates=[PredicateSpec("VERIFIED", "one", "The last deployment verdict of a URL.")],
        ),
    )


def build_server(settings: VerifySettings) -> MCPServer[Any]:
    """Compose the server from its settings (the composition root calls this)."""
    pool: dict[str, VerifyService] = {}

    def svc() -> VerifyService:
        if "svc" not in pool:
            pool["svc"] = build_service(settings)
        return pool["svc"]

    @asynccontextmanager
    async def lifespan(_server: Any) -> Any:
        try:
            yield {}
        finally:  # the browser and HTTP pools never outlive the server
            if "svc" in pool:
                await pool["svc"].browser.close()
                await pool["svc"].http.aclose()

    server = create_server(
        "verify",
        version=__version__,
        instructions=INSTRUCTIONS,
        settings=settings,
        lifespan=lifespan,
    )
    add_health_tool(
        server, version=__version__, settings=settings, probe=lambda: _probe(settings, pool)
    )

    @tool(server, LOOKS)
    async def http_check(
        url: Url,
        expect_status: Annotated[
            list[int] | None, Field(description="Accepted codes (default 2xx).")
        ] = None,
        expect_text: Annotated[str | None, Field(description="Text the body must contain.")] = None,
        expect_header: Annotated[
            dict[str, str] | None, Field(description="Header: substring.")
        ] = None,
        timeout: Annotated[float | None, Field(gt=0, le=120, description="Seconds.")] = None,
        follow_redirects: bool = True,
        verify_tls: Annotated[bool, Field(description="Fail on an invalid certificate.")] = True,
    ) -> HttpCheckResult:
        """Fetch a URL and report status, final URL and redirect chain, time to headers and to
        body, size, TLS certificate subject and days to expiry, and pass/fail per expectation."""
        return await svc().http_check(
            url,
            expect_status=expect_status,
            expect_text=expect_text,
            expect_header=expect_header,
            timeout=timeout,
            follow_redirects=follow_redirects,
            verify_tls=verify_tls,
        )

    @tool(server, LOOKS)
    async def check_many(
        checks: Annotated[list[CheckIn], Field(description="URLs with optional expectations.")],
        concurrency: Annotated[int | None, Field(ge=1, le=200)] = None,
    ) -> ManyResult:
        """Check many URLs concurrently (bounded); one summary row each, failures first."""
        return await svc().check_many([c.model_dump() for c in checks], concurrency)

    @tool(server, LOOKS)
    async def wait_until_live(
        url: Url,
        ctx: Context,
        timeout: Annotated[float, Field(gt=0, le=900, description="Give up after (s).")] = 60,
        expect_status: Annotated[list[int] | None, Field(description="Accepted codes.")] = None,
        expect_text: Annotated[str | None, Field(description="Text the body must contain.")] = None,
    ) -> WaitResult:
        """Poll with backoff until the URL meets the expectations (reports progress), or report
        the last failure when time runs out."""

        async def progress(done: float, total: float, message: str) -> None:
            await ctx.report_progress(done, total, message)

        return await svc().wait_until_live(
            url,
            timeout_s=timeout,
            progress=progress,
            expect_status=expect_status,
            expect_text=expect_text,
        )

    @tool(server, LOOKS)
    async def screenshot(
        url: Url,
        width: Annotated[int, Field(ge=200, le=3840)] = 1280,
        height: Annotated[int, Field(ge=200, le=2160)] = 800,
        full_page: bool = False,
        wait_for: Annotated[
            str | None, Field(description="'load', 'networkidle' or a CSS selector to wait for.")
        ] = None,
        include_image: Annotated[
            bool, Field(description="Attach the PNG for you to look at (when small).")
        ] = True,
        ignore_https_errors: bool = False,
    ) -> Annotated[CallToolResult, ScreenshotResult]:
        """Screenshot a page into the artifact directory; returns path, size and dimensions,
        and the image itself when small enough."""
        result, data = await svc().screenshot(
            url,
            width=width,
            height=height,
            full_page=full_page,
            wait_for=wait_for,
            ignore_https_errors=ignore_https_errors,
        )
        content: list[Any] = [TextContent(type="text", text=json.dumps(result.model_dump()))]
        if include_image and data is not None:
            content.append(
                ImageContent(
                    type="image", data=base64.b64encode(data).decode(), mime_type="image/png"
                )
            )
        else:
            result = result.model_copy(update={"inline": False})
        return CallToolResult(content=content, structured_content=result.model_dump())

    @tool(server, LOOKS)
    async def count_images(
        url: Url,
        backgrounds: Annotated[bool, Field(description="Also CSS background images.")] = False,
        ignore_https_errors: bool = False,
    ) -> ImageCount:
        """Count <img> elements as a reader of the whole page sees them, how many loaded, and
        which did not and why.

        Lazy images are loaded first (as if the reader scrolled), and an image counts as loaded
        only if its bytes decode completely. Each other image has a reason: the HTTP status or
        network error of its request, 'does not decode: …', or 'not loaded (lazy, never in
        view)' when the browser never requested it."""
        return await svc().count_images(
            url, backgrounds=backgrounds, ignore_https_errors=ignore_https_errors
        )

    @tool(server, LOOKS)
    async def visual_diff(
        url: Url,
        baseline_path: Annotated[str, Field(description="PNG to compare with.")],
        threshold: Annotated[
            float, Field(ge=0, le=1, description="Max share of changed pixels.")
        ] = 0.01,
        full_page: bool = False,
    ) -> VisualDiffResult:
        """Screenshot the page at the baseline's size and compare: changed-pixel ratio, a diff
        image written next to the baseline, pass/fail."""
        return await svc().visual_diff(url, baseline_path, threshold=threshold, full_page=full_page)

    @tool(server, LOOKS)
    async def verify_deployment(
        url: Url,
        expect_status: Annotated[list[int] | None, Field(description="Accepted codes.")] = None,
        title_contains: str | None = None,
        text_contains: Annotated[
            list[str] | None, Field(description="Texts the page shows.")
        ] = None,
        min_images: Annotated[int, Field(ge=0)] = 0,
        allow_broken_images: bool = False,
        allow_console_errors: bool = False,
        baseline_path: Annotated[str | None, Field(description="Optional visual baseline.")] = None,
        threshold: Annotated[float, Field(ge=0, le=1)] = 0.01,
        ignore_https_errors: bool = False,
    ) -> Verdict:
        """Is this deployment right? One verdict: status, title/text, images (none broken),
        no console errors, optional visual diff; failing checks first, with evidence paths."""
        return await svc().verify_deployment(
            url,
            expect_status=expect_status,
            title_contains=title_contains,
            text_contains=text_contains,
            min_images=min_images,
            allow_broken_images=allow_broken_images,
            allow_console_errors=allow_console_errors,
            baseline_path=baseline_path,
            threshold=threshold,
            ignore_https_errors=ignore_https_errors,
        )

    return server
