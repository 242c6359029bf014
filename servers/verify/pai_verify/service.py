"""The verify service: HTTP checks, browser evidence, visual diff and the composite verdict."""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pai_core.audit import AuditLog
from pai_core.errors import InvalidInput, NotFound
from pai_core.memory.record import ChangeFact, ChangeRecorder, MemoryNote
from pai_verify.artifacts import ArtifactStore
from pai_verify.browser import BrowserPool
from pai_verify.http import HttpChecker
from pai_verify.images import judge, settled
from pai_verify.models import (
    CheckRow,
    Expectation,
    HttpCheckResult,
    ImageCount,
    ManyResult,
    ScreenshotResult,
    Verdict,
    VisualDiffResult,
    WaitResult,
)
from pai_verify.pageload import load
from pai_verify.urls import UrlPolicy

__all__ = ["VerifyService", "png_size"]

Progress = Callable[[float, float, str], Awaitable[None]]
_TITLE_AND_TEXT = "() => [document.title, document.body ? document.body.innerText : '']"


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG header."""
    with path.open("rb") as fh:
        head = fh.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n":
        raise InvalidInput(f"{path} is not a PNG", field="baseline_path")
    width, height = struct.unpack(">II", head[16:24])
    return int(width), int(height)


class VerifyService:
    def __init__(
        self,
        urls: UrlPolicy,
        http: HttpChecker,
        browser: BrowserPool,
        artifacts: ArtifactStore,
        *,
        max_concurrency: int = 20,
        inline_max: int = 400_000,
        page_timeout_s: float = 30.0,
        audit: AuditLog | None = None,
        recorder: ChangeRecorder | None = None,
    ) -> None:
        self.audit = audit
        self.recorder = recorder if audit is not None else None
        self.urls = urls
        self.http = http
        self.browser = browser
        self.artifacts = artifacts
        self.max_concurrency = max_concurrency
        self.inline_max = inline_max
        self.page_timeout_s = page_timeout_s

    # ------------------------------------------------------------------ HTTP
    async def http_check(self, url: str, **kw: Any) -> HttpCheckResult:
        return await self.http.check(self.urls.check(url), **kw)

    async def check_many(
        self, checks: list[dict[str, Any]], concurrency: int | None = None
    ) -> ManyResult:
        if not checks:
            raise InvalidInput("checks is empty", field="checks")
        if len(checks) > 1000:
            raise InvalidInput("at most 1000 checks per call", field="checks")
        for i, c in enumerate(checks):
            self.urls.check(str(c.get("url", "")), field=f"checks[{i}].url")
        limit = asyncio.Semaphore(min(concurrency or self.max_concurrency, self.max_concurrency))
        started = time.perf_counter()

        async def one(c: dict[str, Any]) -> CheckRow:
            async with limit:
                url = c["url"]
                kw = {k: v for k, v in c.items() if k != "url" and v is not None}
                r = await self.http.check(url, **kw)
                return CheckRow(
                    url=url,
                    ok=r.ok,
                    status=r.status,
                    total_ms=r.total_ms,
                    failed=[x.name for x in r.checks if not x.ok],
                    error=r.error,
                )

        rows = await asyncio.gather(*(one(c) for c in checks))
        passed = sum(r.ok for r in rows)
        return ManyResult(
            total=len(rows),
            passed=passed,
            failed=len(rows) - passed,
            wall_ms=round((time.perf_counter() - started) * 1000, 1),
            rows=sorted(rows, key=lambda r: r.ok),
        )

    async def wait_until_live(
        self, url: str, *, timeout_s: float, progress: Progress | None = None, **kw: Any
    ) -> WaitResult:
        url = self.urls.check(url)
        started = time.monotonic()
        delay, attempts = 0.25, 0
        while True:
            attempts += 1
            last = await self.http.check(url, **kw)
            waited = time.monotonic() - started
            if progress is not None:
                await progress(
                    min(waited, timeout_s),
                    timeout_s,
                    f"attempt {attempts}: {'live' if last.ok else 'not yet'}",
                )
            if last.ok or waited + delay > timeout_s:
                return WaitResult(
                    live=last.ok, attempts=attempts, waited_s=round(waited, 2), last=last
                )
            await asyncio.sleep(delay)
            delay = min(delay * 1.6, 5.0)

    # ------------------------------------------------------------------ browser
    async def _load(self, page: Any, url: str, wait_for: str | None) -> None:
        await load(page, url, wait_for, timeout_s=self.page_timeout_s)

    async def screenshot(
        self,
        url: str,
        *,
        width: int = 1280,
        height: int = 800,
        full_page: bool = False,
        wait_for: str | None = None,
        ignore_https_errors: bool = False,
    ) -> tuple[ScreenshotResult, bytes | None]:
        url = self.urls.check(url)
        self.artifacts.sweep()
        path = self.artifacts.new_path(urlsplit(url).netloc + urlsplit(url).path)
        async with self.browser.page(
            width=width, height=height, ignore_https_errors=ignore_https_errors
        ) as (page, _events):
            await self._load(page, url, wait_for)
            data = await self.browser.screenshot(page, full_page=full_page)
            title = await page.title()
        path.write_bytes(data)
        w, h = png_size(path)
        inline = len(data) <= self.inline_max
        result = ScreenshotResult(
            url=url, path=str(path), bytes=len(data), width=w, height=h, title=title, inline=inline
        )
        return result, data if inline else None

    async def count_images(
        self, url: str, *, backgrounds: bool = False, ignore_https_errors: bool = False
    ) -> ImageCount:
        url = self.urls.check(url)
        async with self.browser.page(ignore_https_errors=ignore_https_errors) as (page, events):
            await self._load(page, url, "load")
            return await self._image_count(page, url, events, backgrounds=backgrounds)

    async def _image_count(
        self, page: Any, url: str, events: Any, *, backgrounds: bool
    ) -> ImageCount:
        found = await settled(
            page, events, backgrounds=backgrounds, wait_s=min(10.0, self.page_timeout_s)
        )
        loaded, broken = await judge(found, events)

        def why(src: str) -> dict[str, str | int | None]:
            status = events.responses.get(src)
            reason = events.failures.get(src) or (f"HTTP {status}" if status else "not loaded")
            return {"src": src, "status": status, "reason": reason}

        bgs = found.get("bgs")
        bg_broken = []
        if bgs is not None:
            bg_broken = [
                why(b)
                for b in dict.fromkeys(bgs)
                if (events.responses.get(b) or 0) >= 400 or b in events.failures
            ]
        return ImageCount(
            url=url,
            total=len(found["imgs"]),
            loaded=loaded,
            broken=broken[:100],
            background_images=len(set(bgs)) if bgs is not None else None,
            background_broken=bg_broken[:100],
        )

    async def visual_diff(
        self,
        url: str,
        baseline_path: str,
        *,
        threshold: float = 0.01,
        width: int | None = None,
        height: int | None = None,
        full_page: bool = False,
    ) -> VisualDiffResult:
        base = Path(baseline_path).expanduser()
        if not base.is_file():
            raise NotFound(
                f"no baseline at {base}",
                field="baseline_path",
                hint="Take a screenshot first and pass its path as the baseline.",
            )
        bw, bh = png_size(base)
        shot, _ = await self.screenshot(
            url, width=width or bw, height=height or bh, full_page=full_page
        )
        ratio, mismatch, diff = await asyncio.to_thread(self._diff, base, Path(shot.path))
        return VisualDiffResult(
            ok=not mismatch and ratio <= threshold,
            ratio=round(ratio, 6),
            threshold=threshold,
            screenshot_path=shot.path,
            baseline_path=str(base),
            diff_path=str(diff) if diff else None,
            size_mismatch=mismatch,
        )

    @staticmethod
    def _diff(base: Path, current: Path) -> tuple[float, bool, Path | None]:
        from PIL import Image, ImageChops

        a = Image.open(base).convert("RGB")
        b = Image.open(current).convert("RGB")
        if a.size != b.size:
            return 1.0, True, None
        delta = ImageChops.difference(a, b).convert("L")
        mask = delta.point(lambda v: 255 if v > 16 else 0)
        changed = mask.histogram()[255]
        ratio = changed / (a.size[0] * a.size[1])
        overlay = Image.blend(a.convert("L").convert("RGB"), Image.new("RGB", a.size, "white"), 0.6)
        overlay.paste(Image.new("RGB", a.size, (230, 0, 0)), mask=mask)
        diff_path = base.with_name(f"{base.stem}.diff.png")
        overlay.save(diff_path)
        return ratio, False, diff_path

    # ------------------------------------------------------------------ verdict
    async def verify_deployment(
        self,
        url: str,
        *,
        expect_status: list[int] | None = None,
        title_contains: str | None = None,
        text_contains: list[str] | None = None,
        min_images: int = 0,
        allow_broken_images: bool = False,
        allow_console_errors: bool = False,
        baseline_path: str | None = None,
        threshold: float = 0.01,
        ignore_https_errors: bool = False,
    ) -> Verdict:
        url = self.urls.check(url)
        http = await self.http.check(
            url, expect_status=expect_status, verify_tls=not ignore_https_errors
        )
        checks: list[Expectation] = list(http.checks)
        shot_path = diff_path = None
        console: list[str] = []
        if http.status is not None:
            path = self.artifacts.new_path(urlsplit(url).netloc + "-verdict")
            width, height = 1280, 800
            if baseline_path and Path(baseline_path).expanduser().is_file():
                width, height = png_size(Path(baseline_path).expanduser())
            async with self.browser.page(
                width=width, height=height, ignore_https_errors=ignore_https_errors
            ) as (page, ev):
                await self._load(page, url, "load")
                images = await self._image_count(page, url, ev, backgrounds=False)
                title, body = await page.evaluate(_TITLE_AND_TEXT)
                path.write_bytes(await self.browser.screenshot(page))
                console = list(ev.console_errors)
            shot_path = str(path)
            if title_contains is not None:
                checks.append(
                    Expectation(
                        name="title",
                        expected=f"contains {title_contains!r}",
                        actual=title,
                        ok=title_contains in title,
                    )
                )
            for text in text_contains or []:
                checks.append(
                    Expectation(
                        name="text",
                        expected=f"contains {text!r}",
                        actual="found" if text in body else "not found",
                        ok=text in body,
                    )
                )
            checks.append(
                Expectation(
                    name="images",
                    expected=f">= {min_images}",
                    actual=str(images.loaded),
                    ok=images.loaded >= min_images,
                )
            )
            if not allow_broken_images:
                checks.append(
                    Expectation(
                        name="broken images",
                        expected="0",
                        actual=str(len(images.broken))
                        + (
                            f" ({', '.join(str(b['src']) for b in images.broken[:3])})"
                            if images.broken
                            else ""
                        ),
                        ok=not images.broken,
                    )
                )
            if not allow_console_errors:
                checks.append(
                    Expectation(
                        name="console errors",
                        expected="0",
                        actual=str(len(console)) + (f": {console[0][:200]}" if console else ""),
                        ok=not console,
                    )
                )
            if baseline_path:
                base = Path(baseline_path).expanduser()
                if not base.is_file():
                    raise NotFound(f"no baseline at {base}", field="baseline_path")
                ratio, mismatch, diff = await asyncio.to_thread(self._diff, base, path)
                diff_path = str(diff) if diff else None
                checks.append(
                    Expectation(
                        name="visual diff",
                        expected=f"<= {threshold}",
                        actual="size differs" if mismatch else f"{ratio:.4f}",
                        ok=not mismatch and ratio <= threshold,
                    )
                )
        failing = [c for c in checks if not c.ok]
        verdict = Verdict(
            url=url,
            passed=not failing,
            failing=failing,
            passing=[c for c in checks if c.ok],
            screenshot_path=shot_path,
            diff_path=diff_path,
            console_errors=console[:20],
        )
        if self.recorder is not None:
            verdict.memory = await asyncio.to_thread(self._remember, verdict)
        return verdict

    def _remember(self, verdict: Verdict) -> MemoryNote:
        """Record the verdict (a fact per URL, superseding the last one) with its evidence."""
        assert self.recorder is not None and self.audit is not None
        outcome = "passed" if verdict.passed else "failed"
        entry = self.audit.append(
            "verify.deployment",
            url=verdict.url,
            verdict=outcome,
            failing=[c.name for c in verdict.failing],
            screenshot=verdict.screenshot_path,
        )
        evidence = ", ".join(
            x
            for x in (
                f"failing: {', '.join(c.name for c in verdict.failing)}" if verdict.failing else "",
                f"screenshot {verdict.screenshot_path}" if verdict.screenshot_path else "",
            )
            if x
        )
        fact = ChangeFact(verdict.url, "VERIFIED", value=outcome, subject_type="url", note=evidence)
        return self.recorder.record(entry["seq"], [fact])
