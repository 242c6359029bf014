"""The verify service against a real site on loopback, with a real Chromium."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from pai_core.errors import BackendUnavailable, InvalidInput, NotFound, PolicyDenied
from pai_core.settings import load_settings
from pai_verify.browser import browser_pids
from pai_verify.server import build_service
from pai_verify.service import VerifyService, png_size
from pai_verify.settings import VerifySettings
from tests.conftest import free_port
from tests.servers.verify.conftest import LAZY_IMAGES, Site


def run(tmp_path: Path, body: Callable[[VerifyService], Awaitable[Any]], **overrides: Any) -> Any:
    """Run ``body`` with a fresh service in one event loop; prove no browser is left after."""
    settings = load_settings(
        VerifySettings, tmp_path / "none.toml", data_dir=tmp_path / "data", **overrides
    )
    holder: dict[str, VerifyService] = {}

    async def main() -> Any:
        svc = build_service(settings)
        holder["svc"] = svc
        try:
            return await body(svc)
        finally:
            await svc.browser.close()
            await svc.http.aclose()

    result = anyio.run(main)
    assert browser_pids(holder["svc"].browser.token) == [], "a Chromium process was left behind"
    return result


def test_http_check_reports_status_text_headers_and_redirects(site: Site, tmp_path: Path) -> None:
    async def body(svc: VerifyService) -> None:
        good = await svc.http_check(
            site.url("/"), expect_text="Hello from PAI", expect_header={"x-served-by": "pai-test"}
        )
        assert good.ok and good.status == 200 and good.size_bytes and good.size_bytes > 100
        assert good.ttfb_ms is not None and good.total_ms is not None
        assert [c.name for c in good.checks] == ["status", "text", "header x-served-by"]
        chain = await svc.http_check(site.url("/redirect"))
        assert [h["status"] for h in chain.redirects] == [302, 301]
        assert chain.final_url == site.url("/") and chain.ok
        unfollowed = await svc.http_check(
            site.url("/redirect"), follow_redirects=False, expect_status=[302]
        )
        assert unfollowed.ok and unfollowed.status == 302
        down = await svc.http_check(site.url("/status/503"))
        assert not down.ok and down.checks[0].actual == "503"
        missing = await svc.http_check(site.url("/"), expect_text="not on the page")
        assert not missing.ok and [c.name for c in missing.checks if not c.ok] == ["text"]
        closed = await svc.http_check("http://127.0.0.1:9/")
        assert not closed.ok and closed.status is None and closed.error

    run(tmp_path, body)


def test_tls_certificate_is_reported(site: Site, tmp_path: Path) -> None:
    async def body(svc: VerifyService) -> None:
        strict = await svc.http_check(site.tls_base + "/")
        assert not strict.ok and strict.tls is not None
        assert strict.tls.subject == "CN=localhost" and not strict.tls.verified
        assert 28 <= strict.tls.days_to_expiry <= 30
        lax = await svc.http_check(site.tls_base + "/", verify_tls=False)
        assert lax.ok and lax.status == 200 and lax.tls and lax.tls.subject == "CN=localhost"

    run(tmp_path, body)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "chrome://settings", "ftp://x/", "/rel", ""])
def test_only_http_urls_are_accepted(url: str, tmp_path: Path) -> None:
    async def body(svc: VerifyService) -> None:
        with pytest.raises(InvalidInput):
            await svc.http_check(url)
        with pytest.raises(InvalidInput):
            await svc.screenshot(url)

    run(tmp_path, body)


def test_allow_and_deny_lists(site: Site, tmp_path: Path) -> None:
    async def body(svc: VerifyService) -> None:
        with pytest.raises(PolicyDenied, match="allow list"):
            await svc.http_check("http://127.0.0.1:1/")
        assert (await svc.http_check(site.tls_base + "/", verify_tls=False)).ok
        with pytest.raises(PolicyDenied, match="deny list"):
            await svc.http_check("http://sub.blocked.test/")

    run(tmp_path, body, allow_hosts=["localhost", "blocked.test"], deny_hosts=["blocked.test"])


def test_check_many_and_wait_until_live(site: Site, tmp_path: Path) -> None:
    async def body(svc: VerifyService) -> None:
        checks = [{"url": site.url(f"/slow?ms=150&i={i}")} for i in range(20)]
        checks.append({"url": site.url("/status/500")})
        many = await svc.check_many(checks)
        assert many.total == 21 and many.passed == 20 and many.failed == 1
        assert many.rows[0].url.endswith("/status/500")  # failures first
        site.state.update(hits=0, down_for=3)
        seen: list[str] = []

        async def progress(done: float, total: float, message: str) -> None:
            seen.append(message)

        live = await svc.wait_until_live(site.url("/eventually"), timeout_s=30, progress=progress)
        assert live.live and live.attempts == 4 and live.last.status == 200
        assert seen[0].startswith("attempt 1: not yet") and seen[-1].endswith("live")
        site.state.update(hits=0, down_for=10_000)
        gave_up = await svc.wait_until_live(site.url("/eventually"), timeout_s=1)
        assert not gave_up.live and gave_up.last.status == 503

    run(tmp_path, body)


def test_screenshots_are_real_pngs(site: Site, tmp_path: Path, chromium: str) -> None:
    async def body(svc: VerifyService) -> None:
        shot, data = await svc.screenshot(site.url("/"), width=800, height=600)
        assert Path(shot.path).is_file() and png_size(Path(shot.path)) == (800, 600)
        assert shot.title == "PAI Test Site" and data and data[:4] == b"\x89PNG"
        full, _ = await svc.screenshot(site.url("/"), width=800, height=600, full_page=True)
        assert full.width == 800 and full.height > 1500
        with pytest.raises(BackendUnavailable, match="nothing answers"):
            await svc.screenshot(f"http://127.0.0.1:{free_port()}/")
        with pytest.raises(InvalidInput, match="refuse to open this port"):
            await svc.screenshot("http://127.0.0.1:9/")

    run(tmp_path, body, chromium_path=chromium)


def test_count_images(site: Site, tmp_path: Path, chromium: str) -> None:
    async def body(svc: VerifyService) -> None:
        good = await svc.count_images(site.url("/"), backgrounds=True)
        assert (good.total, good.loaded, good.broken) == (2, 2, [])
        assert good.background_images == 1 and good.background_broken == []
        bad = await svc.count_images(site.url("/broken"), backgrounds=True)
        assert (bad.total, bad.loaded) == (3, 1)
        reasons = {b["src"].rsplit("/", 1)[1]: b for b in bad.broken}  # type: ignore[union-attr]
        assert reasons["missing.png"]["status"] == 404
        assert reasons["missing.png"]["reason"] == "HTTP 404"
        assert reasons["corrupt.png"]["status"] == 200
        assert [b["status"] for b in bad.background_broken] == [404]

    run(tmp_path, body, chromium_path=chromium)


def test_visual_diff_passes_unchanged_and_fails_changed(
    site: Site, tmp_path: Path, chromium: str
) -> None:
    async def body(svc: VerifyService) -> None:
        site.state["changed"] = False
        base, _ = await svc.screenshot(site.url("/changing"), width=640, height=480)
        baseline = tmp_path / "baseline.png"
        baseline.write_bytes(Path(base.path).read_bytes())
        same = await svc.visual_diff(site.url("/changing"), str(baseline))
        assert same.ok and same.ratio < 0.001
        site.state["changed"] = True
        changed = await svc.visual_diff(site.url("/changing"), str(baseline))
        assert not changed.ok and changed.ratio > 0.5
        assert changed.diff_path and Path(changed.diff_path).parent == tmp_path
        assert png_size(Path(changed.diff_path)) == (640, 480)
        with pytest.raises(NotFound):
            await svc.visual_diff(site.url("/"), str(tmp_path / "nope.png"))

    run(tmp_path, body, chromium_path=chromium)


def test_verify_deployment_verdicts(site: Site, tmp_path: Path, chromium: str) -> None:
    async def body(svc: VerifyService) -> None:
        good = await svc.verify_deployment(
            site.url("/"), title_contains="PAI Test", text_contains=["Hello from PAI"], min_images=2
        )
        assert good.passed and good.failing == []
        assert good.screenshot_path and Path(good.screenshot_path).is_file()
        broken = await svc.verify_deployment(site.url("/broken"), min_images=2)
        assert not broken.passed
        # the browser also logs each failed image load as a console error
        assert {c.name for c in broken.failing} == {"images", "broken images", "console errors"}
        noisy = await svc.verify_deployment(site.url("/console"))
        assert [c.name for c in noisy.failing] == ["console errors"]
        assert "boom from the page" in noisy.console_errors[0]
        down = await svc.verify_deployment(site.url("/status/502"))
        assert not down.passed and down.failing[0].name == "status"

    run(tmp_path, body, chromium_path=chromium)


def test_a_killed_browser_is_replaced(site: Site, tmp_path: Path, chromium: str) -> None:
    async def body(svc: VerifyService) -> None:
        await svc.screenshot(site.url("/"))
        pids = browser_pids(svc.browser.token)
        assert pids
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        with anyio.fail_after(30):
            while browser_pids(svc.browser.token):
                await anyio.sleep(0.05)
        shot, _ = await svc.screenshot(site.url("/"))
        assert Path(shot.path).is_file() and svc.browser.launches == 2

    run(tmp_path, body, chromium_path=chromium)


def test_artifacts_are_swept_by_age_and_size(tmp_path: Path) -> None:
    async def body(svc: VerifyService) -> None:
        store = svc.artifacts
        old = store.new_path("old")
        old.write_bytes(b"x" * 10)
        os.utime(old, (1, 1))
        files = [store.new_path(f"f{i}") for i in range(5)]
        for i, f in enumerate(files):
            f.write_bytes(b"y" * 400)
            os.utime(f, (2_000_000_000 + i, 2_000_000_000 + i))
        assert store.sweep(force=True) == 4  # the old one, then three oldest over 1000 bytes
        assert sorted(p.name for p in store.root.iterdir()) == sorted(f.name for f in files[3:])

    run(tmp_path, body, artifact_max_bytes=1000, artifact_max_age_s=86400 * 365 * 100)


def test_lazy_images_far_below_the_fold_are_loaded_before_judging(
    site: Site, tmp_path: Path, chromium: str
) -> None:
    """An 18,000 px post with four loading=lazy images far down: the site gets the image
    requests, all four count as loaded, and the verdict with min_images=4 passes."""

    async def body(svc: VerifyService) -> None:
        before = {src: int(site.state.get(f"hits:{src}", 0)) for src in LAZY_IMAGES}
        count = await svc.count_images(site.url("/lazy-post"))
        assert (count.total, count.loaded, count.broken) == (4, 4, []), count
        assert all(int(site.state.get(f"hits:{s}", 0)) > before[s] for s in LAZY_IMAGES)
        verdict = await svc.verify_deployment(site.url("/lazy-post"), min_images=4)
        assert verdict.passed, verdict.failing

    run(tmp_path, body, chromium_path=chromium)


def test_a_truncated_png_is_not_counted_as_loaded(
    site: Site, tmp_path: Path, chromium: str
) -> None:
    async def body(svc: VerifyService) -> None:
        count = await svc.count_images(site.url("/truncated"))
        assert (count.total, count.loaded) == (2, 1), count
        [half] = count.broken
        assert str(half["src"]).endswith("/img/half.png") and half["status"] == 200
        assert str(half["reason"]).startswith("does not decode"), half

    run(tmp_path, body, chromium_path=chromium)


def test_lazy_image_never_requested_is_told_apart_from_a_broken_one() -> None:
    from pai_verify.browser import PageEvents
    from pai_verify.images import LAZY_NEVER_IN_VIEW, judge

    found = {
        "imgs": [
            {"src": "http://s/lazy.png", "complete": False, "width": 0, "lazy": True},
            {"src": "http://s/gone.png", "complete": True, "width": 0, "lazy": True},
        ]
    }
    events = PageEvents(responses={"http://s/gone.png": 404})
    loaded, broken = anyio.run(judge, found, events)
    assert loaded == 0
    assert [b["reason"] for b in broken] == [LAZY_NEVER_IN_VIEW, "HTTP 404"]


def test_urls_longer_than_the_cap_are_refused_without_echoing_them(tmp_path: Path) -> None:
    from pai_verify.urls import MAX_URL_LENGTH, UrlPolicy

    long_url = "http://127.0.0.1/" + "a" * 10_000
    with pytest.raises(InvalidInput) as info:
        UrlPolicy().check(long_url)
    assert str(MAX_URL_LENGTH) in str(info.value) and len(str(info.value)) < 400
    assert UrlPolicy().check("http://127.0.0.1/" + "a" * 1000)  # a long but real URL passes

    async def body(svc: VerifyService) -> None:
        with pytest.raises(InvalidInput, match="at most"):
            await svc.http_check(long_url)
        with pytest.raises(InvalidInput) as many:
            await svc.check_many([{"url": "http://127.0.0.1/"}, {"url": long_url}])
        assert many.value.details["field"] == "checks[1].url"

    run(tmp_path, body)


def test_each_page_load_failure_has_its_own_error(
    site: Site, tmp_path: Path, chromium: str
) -> None:
    async def body(svc: VerifyService) -> None:
        with pytest.raises(BackendUnavailable, match="did not finish loading within 1 s"):
            await svc.count_images(site.url("/slow?ms=4000"))
        with pytest.raises(NotFound, match="selector never appeared") as waited:
            await svc.screenshot(site.url("/wait"), wait_for="#app")
        assert waited.value.details["field"] == "wait_for"
        with pytest.raises(InvalidInput) as bad_selector:
            await svc.screenshot(site.url("/wait"), wait_for="###")
        assert bad_selector.value.details["field"] == "wait_for"

        # The browser dies while the page loads: a crash, not a missing page.
        hits = int(site.state.get("slow_hits", 0))
        task = asyncio.create_task(svc.screenshot(site.url("/slow?ms=800")))
        with anyio.fail_after(30):
            while int(site.state.get("slow_hits", 0)) == hits:
                await anyio.sleep(0.02)
        for pid in browser_pids(svc.browser.token):
            os.kill(pid, signal.SIGKILL)
        with pytest.raises(BackendUnavailable, match="crashed") as crashed:
            await task
        assert "new browser" in str(crashed.value)

    run(tmp_path, body, chromium_path=chromium, page_timeout_s=1)


@pytest.mark.parametrize(
    ("text", "kind", "words"),
    [
        ("net::ERR_NAME_NOT_RESOLVED at http://x.invalid/", NotFound, "does not resolve"),
        ("net::ERR_CONNECTION_REFUSED at http://127.0.0.1:9/", BackendUnavailable, "nothing"),
        ("net::ERR_CERT_AUTHORITY_INVALID at https://x/", BackendUnavailable, "ignore_https"),
        ("Target page, context or browser has been closed", BackendUnavailable, "crashed"),
        ("Page crashed", BackendUnavailable, "crashed"),
    ],
)
def test_load_errors_by_cause(text: str, kind: type[Exception], words: str) -> None:
    from pai_verify.pageload import load_error

    err = load_error(RuntimeError(text), url="http://x/", timeout_s=30)
    assert isinstance(err, kind) and words in str(err), str(err)


def test_pooled_pages_carry_no_state_from_one_check_to_the_next(
    site: Site, tmp_path: Path, chromium: str
) -> None:
    """Each visit finds nothing an earlier visit left (storage, cookie, window.name, IndexedDB),
    its dialog does not block it, its popup is closed, and the pages are reused, not reopened."""

    async def body(svc: VerifyService) -> None:
        sizes = [(800, 600), (1280, 800), (640, 480), (1280, 800)]
        for width, height in sizes:
            shot, _ = await svc.screenshot(
                site.url("/state"), width=width, height=height, wait_for="#done"
            )
            assert shot.title == "found:", shot.title
            assert png_size(Path(shot.path)) == (width, height)
        assert svc.browser.slots_opened <= 2  # one in use, one spare being reset
        await svc.browser.close()  # waits for the last reset
        assert svc.browser.launches == 1

    run(tmp_path, body, chromium_path=chromium)


def test_images_are_judged_when_the_page_settles_not_after_a_quiet_period(
    site: Site, tmp_path: Path, chromium: str
) -> None:
    """A page that never stops loading images is judged on the images it has (all loaded), where
    waiting for network idle would time out; images a script adds after a slow request (after
    the load event) are waited for."""

    async def body(svc: VerifyService) -> None:
        late = await svc.count_images(site.url("/late-images"))
        assert late.total >= 1 and late.loaded == late.total and late.broken == [], late
        verdict = await svc.verify_deployment(site.url("/late-images"), min_images=1)
        assert verdict.passed, verdict.failing
        fetched = await svc.count_images(site.url("/fetched-images"))
        assert (fetched.total, fetched.loaded, fetched.broken) == (2, 2, []), fetched

    run(tmp_path, body, chromium_path=chromium, page_timeout_s=5)


def test_a_capture_chromium_never_answers_falls_back_within_its_deadline(
    site: Site, tmp_path: Path, chromium: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tab whose compositor never answers the direct capture must not hang the call."""
    from pai_verify import browser as browser_mod

    class SilentCapture:
        def __init__(self, cdp: Any) -> None:
            self.cdp = cdp

        async def send(self, method: str, params: Any = None) -> Any:
            if method == "Page.captureScreenshot":
                await asyncio.Event().wait()  # never answers
            return await self.cdp.send(method, params)

    real_open = browser_mod.BrowserPool._open

    async def open_silent(self: Any, browser: Any, tls_lax: bool) -> Any:
        slot = await real_open(self, browser, tls_lax)
        slot.cdp = SilentCapture(slot.cdp)
        return slot

    monkeypatch.setattr(browser_mod, "CAPTURE_TIMEOUT_S", 0.3)
    monkeypatch.setattr(browser_mod.BrowserPool, "_open", open_silent)

    async def body(svc: VerifyService) -> None:
        with anyio.fail_after(20):
            shot, data = await svc.screenshot(site.url("/"), width=640, height=480)
        assert data and png_size(Path(shot.path)) == (640, 480)

    run(tmp_path, body, chromium_path=chromium)
