"""Judging a page's images the way a reader sees them.

Real blogs (WordPress, Hugo) put ``loading="lazy"`` on content images: Chromium fetches those
only when they scroll into view, so a page judged as it first loads reports a long post's
images as broken although the site never got a request for them. :func:`reveal` first makes
every image load that a reader would see: lazy images are switched to eager, the page is
scrolled through once (for script-driven lazy loaders) and back, and the pending images are
awaited up to a deadline.

An image counts as loaded only if its bytes decode completely: Chromium reports a PNG whose
data was cut in half as complete with a width, so :func:`judge` decodes every image the page
loaded (formats Pillow cannot read, such as SVG, are taken on the browser's word). Each image
that is not loaded gets one reason: the network error, ``HTTP <status>``, ``does not decode:
…``, ``not loaded (lazy, never in view)`` when the browser never requested it, or ``not
decodable or not loaded``.

When to judge is decided by events, not by a quiet period: after ``load`` and :func:`reveal`,
:func:`settled` waits until no request the page made is in flight (a script that fetches data
and then adds images keeps it waiting), then, inside the page, until every ``<img>`` is complete
(loaded or failed) and takes the snapshot in that same turn of the page's event loop, so an
image a script adds at the last moment is never caught half-loaded. A page that keeps adding
images is judged on the images it has when it is first quiet; one that never settles is judged
at the deadline.
"""

from __future__ import annotations

import asyncio
import io
import logging
from typing import Any

from pai_verify.events import PageEvents

__all__ = ["IMAGES_JS", "LAZY_NEVER_IN_VIEW", "decode_problem", "judge", "reveal", "settled"]

log = logging.getLogger(__name__)
LAZY_NEVER_IN_VIEW = "not loaded (lazy, never in view)"
_MAX_DECODE_BYTES = 25 * 2**20
_MAX_SCROLL_STEPS = 80

IMAGES_JS = """
async ([withBackgrounds, waitMs]) => {
  const until = Date.now() + waitMs;
  const turn = () => new Promise(r => setTimeout(r, 0));
  for (;;) {
    await turn();  // callbacks already queued (a fetch that just finished) run first
    const pending = Array.from(document.images).filter(i => !i.complete);
    const left = until - Date.now();
    if (!pending.length || left <= 0) break;
    await Promise.race([
      Promise.all(pending.map(i => new Promise(r => {
        i.addEventListener('load', r, {once: true});
        i.addEventListener('error', r, {once: true});
      }))),
      new Promise(r => setTimeout(r, left)),
    ]);
  }
  const imgs = Array.from(document.images).map(i => ({
    src: i.currentSrc || i.src, complete: i.complete, width: i.naturalWidth,
    lazy: i.dataset.paiLazy === '1' || i.loading === 'lazy' }));
  let bgs = null;
  if (withBackgrounds) {
    bgs = [];
    for (const el of document.querySelectorAll('*')) {
      const bg = getComputedStyle(el).backgroundImage;
      const m = bg && bg.match(/url\\(["']?([^"')]+)["']?\\)/);
      if (m) bgs.push(new URL(m[1], document.baseURI).href);
    }
  }
  return {imgs, bgs};
}
"""

_REVEAL_JS = """
async ([maxSteps, waitMs]) => {
  const settle = (ms) => new Promise(r => setTimeout(r, ms));
  const frame = () => new Promise(r => requestAnimationFrame(() => r()));
  const pending = () => Array.from(document.images).filter(i => !i.complete);
  const awaitImages = async (ms) => {
    const waits = pending().map(i => new Promise(r => {
      i.addEventListener('load', r, {once: true});
      i.addEventListener('error', r, {once: true});
    }));
    await Promise.race([Promise.all(waits), settle(ms)]);
  };
  let lazy = 0;
  for (const img of document.images) {
    if (img.loading === 'lazy') { img.dataset.paiLazy = '1'; img.loading = 'eager'; lazy++; }
  }
  await awaitImages(waitMs);
  const unloaded = Array.from(document.images).some(i => !(i.complete && i.naturalWidth > 0));
  const view = window.innerHeight || 800;
  let steps = 0;
  if (unloaded && document.documentElement.scrollHeight > view) {
    for (let y = view; y < document.documentElement.scrollHeight && steps < maxSteps; y += view) {
      window.scrollTo(0, y); steps++;
      await frame();
    }
    await frame();
    window.scrollTo(0, 0);
    await awaitImages(waitMs);
  }
  return {lazy, steps};
}
"""


async def reveal(page: Any, wait_s: float = 10.0) -> dict[str, int]:
    """Load every image a reader of the whole page would see (see the module docstring)."""
    done: dict[str, int] = await page.evaluate(_REVEAL_JS, [_MAX_SCROLL_STEPS, int(wait_s * 1000)])
    return done


async def settled(
    page: Any, events: PageEvents, *, backgrounds: bool, wait_s: float = 10.0
) -> dict[str, Any]:
    """The page's images once it has settled (see the module docstring), within ``wait_s``."""
    loop = asyncio.get_running_loop()
    until = loop.time() + wait_s
    await reveal(page, wait_s)
    if not await events.quiet(until - loop.time()):
        log.info("requests still in flight after %.1f s: judging the page as it is", wait_s)
    left_ms = max(int((until - loop.time()) * 1000), 0)
    found: dict[str, Any] = await page.evaluate(IMAGES_JS, [backgrounds, left_ms])
    return found


def decode_problem(data: bytes) -> str | None:
    """Why ``data`` is not a complete image, or None (also for formats Pillow cannot read)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
    except UnidentifiedImageError:
        return None  # SVG, AVIF without a plugin…: the browser's word stands
    except (OSError, SyntaxError, ValueError) as exc:
        return f"does not decode: {exc}"
    return None


async def _body(events: PageEvents, src: str) -> bytes | None:
    response = events.image_responses.get(src)
    if response is None:
        return None
    try:
        data: bytes = await response.body()
    except Exception as exc:  # evicted from the browser's cache: the browser's word stands
        log.info("cannot read the body of %s: %s", src[:200], exc)
        return None
    return data if len(data) <= _MAX_DECODE_BYTES else None


async def judge(found: dict[str, Any], events: PageEvents) -> tuple[int, list[dict[str, Any]]]:
    """How many of ``found['imgs']`` loaded, and why each of the others did not."""

    def why(image: dict[str, Any], decoded: str | None) -> dict[str, Any]:
        src = image["src"]
        status = events.responses.get(src)
        if src in events.failures:
            reason = events.failures[src]
        elif status and status >= 400:
            reason = f"HTTP {status}"
        elif decoded:
            reason = decoded
        elif image.get("lazy") and status is None:
            reason = LAZY_NEVER_IN_VIEW
        else:
            reason = "not decodable or not loaded"
        return {"src": src, "status": status, "reason": reason}

    imgs = found["imgs"]
    shown = [i for i in imgs if i["complete"] and i["width"] > 0]
    bodies = await asyncio.gather(*(_body(events, i["src"]) for i in shown))
    problems = await asyncio.gather(
        *(asyncio.to_thread(decode_problem, b) if b else _none() for b in bodies)
    )
    bad = {id(i): p for i, p in zip(shown, problems, strict=True) if p}
    loaded = len(shown) - len(bad)
    broken = [why(i, bad.get(id(i))) for i in imgs if id(i) in bad or i not in shown]
    return loaded, broken


async def _none() -> None:
    return None
