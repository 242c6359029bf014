"""The verify server end to end over stdio: tools, inline images, progress, no leftovers."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from tests.conftest import script
from tests.servers.verify.conftest import Site


def _marked_browsers() -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if b"PAI_VERIFY_BROWSER=" in (entry / "environ").read_bytes():
                    found.add(int(entry.name))
            except OSError:
                continue
    return found


def test_verify_tools_through_mcp(site: Site, pai_env: dict[str, str], chromium: str) -> None:
    before = _marked_browsers()
    env = {**pai_env, "PAI_VERIFY_CHROMIUM_PATH": chromium}
    messages: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        messages.append(message or "")

    async def run() -> dict[str, Any]:
        params = StdioServerParameters(command=script("verify"), env=env)
        async with stdio_client(params) as (r, w), ClientSession(r, w) as s:
            await s.initialize()
            tools = {t.name: t for t in (await s.list_tools()).tools}
            assert {
                "http_check",
                "check_many",
                "wait_until_live",
                "screenshot",
                "count_images",
                "visual_diff",
                "verify_deployment",
            } <= set(tools)
            assert all(t.annotations and t.annotations.read_only_hint for t in tools.values())
            out: dict[str, Any] = {}
            out["http"] = await s.call_tool("http_check", {"url": site.url("/redirect")})
            out["shot"] = await s.call_tool(
                "screenshot", {"url": site.url("/"), "width": 640, "height": 400}
            )
            site.state.update(hits=0, down_for=2)
            out["wait"] = await s.call_tool(
                "wait_until_live",
                {"url": site.url("/eventually"), "timeout": 30},
                progress_callback=on_progress,
            )
            out["verdict"] = await s.call_tool(
                "verify_deployment",
                {"url": site.url("/"), "min_images": 2, "title_contains": "PAI"},
            )
            out["refused"] = await s.call_tool("http_check", {"url": "file:///etc/passwd"})
            out["health"] = await s.call_tool("health", {})
            return out

    got = anyio.run(run)
    http = got["http"].structured_content
    assert http["ok"] and [h["status"] for h in http["redirects"]] == [302, 301]
    shot = got["shot"]
    meta = shot.structured_content
    assert (meta["width"], meta["height"], meta["inline"]) == (640, 400, True)
    image = next(c for c in shot.content if c.type == "image")
    assert base64.b64decode(image.data)[:4] == b"\x89PNG"
    assert Path(meta["path"]).is_file()
    assert got["wait"].structured_content["live"] and len(messages) >= 3
    assert got["verdict"].structured_content["passed"]
    assert got["refused"].is_error and "only http and https" in got["refused"].content[0].text
    assert got["health"].structured_content["details"]["browser_launches"] == 1
    assert _marked_browsers() - before == set(), "the server left Chromium running"
