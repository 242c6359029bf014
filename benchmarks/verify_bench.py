"""verify: check_many over 100 slow loopback URLs against the slowest single check; screenshot
latency (first call with browser start, then warm p50/p95); and, in the same run, the same
verification through @playwright/mcp driving the same Chromium, compared on time and result
size (tokens ≈ bytes / 4). Everything runs against a test site on 127.0.0.1."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent
CHROMIUM = "/usr/bin/chromium"
DELAY_MS = 300

from tests.servers.verify.conftest import _handler, _png  # noqa: E402


def _size(result: Any) -> int:
    return len(json.dumps([c.model_dump(mode="json") for c in result.content]))


async def pai(site: str, env: dict[str, str], runs: int) -> dict[str, Any]:
    params = StdioServerParameters(command=str(BIN / "pai-verify"), env=env)
    out: dict[str, Any] = {}
    async with stdio_client(params) as (r, w), ClientSession(r, w) as s:
        await s.initialize()
        await s.list_tools()
        one = await s.call_tool("http_check", {"url": f"{site}/slow?ms={DELAY_MS}"})
        out["single_check_ms"] = one.structured_content["total_ms"]
        checks = [{"url": f"{site}/slow?ms={DELAY_MS}&i={i}"} for i in range(100)]
        walls = []
        for _ in range(3):
            t = time.perf_counter()
            many = await s.call_tool("check_many", {"checks": checks, "concurrency": 100})
            walls.append((time.perf_counter() - t) * 1000)
            sc = many.structured_content
            assert sc["passed"] == 100, [r for r in sc["rows"] if not r["ok"]][:3]
        out["check_many_100_wall_ms"] = round(statistics.median(walls), 1)
        out["check_many_vs_slowest"] = round(out["check_many_100_wall_ms"] / DELAY_MS, 2)
        t = time.perf_counter()
        first = await s.call_tool("screenshot", {"url": f"{site}/", "include_image": False})
        out["screenshot_first_ms"] = round((time.perf_counter() - t) * 1000, 1)
        assert not first.is_error, first.content
        warm = []
        for _ in range(runs):
            t = time.perf_counter()
            await s.call_tool("screenshot", {"url": f"{site}/", "include_image": False})
            warm.append(time.perf_counter() - t)
        warm.sort()
        out["screenshot_warm_p50_ms"] = round(warm[len(warm) // 2] * 1000, 1)
        out["screenshot_warm_p95_ms"] = round(warm[int(0.95 * (len(warm) - 1))] * 1000, 1)
        times, sizes = [], []
        for _ in range(5):
            t = time.perf_counter()
            verdict = await s.call_tool(
                "verify_deployment", {"url": f"{site}/", "min_images": 2, "title_contains": "PAI"}
            )
            times.append(time.perf_counter() - t)
            sizes.append(_size(verdict))
            assert verdict.structured_content["passed"], verdict.structured_content
        out["verify_deployment_ms"] = round(statistics.median(times) * 1000, 1)
        out["verify_deployment_tokens"] = sizes[-1] // 4
    return out


def install_playwright_mcp(tmp: Path) -> Path | None:
    if not shutil.which("npm"):
        return None
    proc = subprocess.run(
        [
            "npm",
            "install",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            "--prefix",
            str(tmp),
            "@playwright/mcp",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    cli = tmp / "node_modules" / "@playwright" / "mcp" / "cli.js"
    return cli if proc.returncode == 0 and cli.exists() else None


async def playwright_mcp(cli: Path, site: str, tmp: Path) -> dict[str, Any]:
    params = StdioServerParameters(
        command="node",
        args=[
            str(cli),
            "--headless",
            "--isolated",
            "--executable-path",
            CHROMIUM,
            "--output-dir",
            str(tmp / "pw-out"),
            "--no-sandbox",
        ],
        env={**os.environ, "HOME": str(tmp)},
    )
    out: dict[str, Any] = {}
    async with stdio_client(params) as (r, w), ClientSession(r, w) as s:
        await s.initialize()
        await s.list_tools()
        times, sizes = [], []
        for _ in range(6):
            t = time.perf_counter()
            nav = await s.call_tool("browser_navigate", {"url": f"{site}/"})
            shot = await s.call_tool("browser_take_screenshot", {})
            times.append(time.perf_counter() - t)
            sizes.append(_size(nav) + _size(shot))
            assert not nav.is_error, nav.content
        out["navigate_plus_screenshot_first_ms"] = round(times[0] * 1000, 1)
        out["navigate_plus_screenshot_warm_ms"] = round(statistics.median(times[1:]) * 1000, 1)
        out["result_tokens"] = sizes[-1] // 4
        out["note"] = (
            "browser primitives only: the model still has to read the snapshot to judge "
            "title, images and console errors"
        )
    return out


def serve_site() -> None:
    """The test site in its own process, so it shares no interpreter lock with the client."""
    state: dict[str, int | bool] = {}
    images = {
        "/img/a.png": _png((0, 120, 255)),
        "/img/b.png": _png((255, 160, 0)),
        "/img/bg.png": _png((10, 200, 10), (200, 120)),
    }

    class Site(ThreadingHTTPServer):
        request_queue_size = 512  # 100 connections at once must not overflow the backlog
        daemon_threads = True

    httpd = Site(("127.0.0.1", 0), _handler(state, images))
    print(httpd.server_address[1], flush=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    sys.stdin.read()  # until the parent closes our stdin
    httpd.shutdown()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--serve-site", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_site:
        serve_site()
        return 0
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve-site"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None and server.stdin is not None
    site = f"http://127.0.0.1:{int(server.stdout.readline())}"
    tmp = Path(tempfile.mkdtemp(prefix="pai-verify-bench-"))
    env = {
        **os.environ,
        "PAI_HOME": str(tmp / "pai"),
        "PAI_CONFIG": str(tmp / "x.toml"),
        "PAI_VERIFY_CHROMIUM_PATH": CHROMIUM,
        "PAI_VERIFY_MAX_CONCURRENCY": "100",
    }
    try:
        result: dict[str, Any] = {
            "benchmark": "verify",
            "delay_ms": DELAY_MS,
            "pai": anyio.run(pai, site, env, 5 if args.quick else 20),
        }
        cli = None if args.quick else install_playwright_mcp(tmp / "npm")
        if cli:
            try:
                result["playwright_mcp"] = anyio.run(playwright_mcp, cli, site, tmp)
            except Exception as exc:  # report, do not hide, a peer that cannot run here
                result["playwright_mcp"] = {"error": f"{type(exc).__name__}: {exc}"}
        else:
            result["playwright_mcp"] = {"error": "not installed (npm or quick run)"}
    finally:
        server.stdin.close()
        server.wait(10)
        server.stdout.close()
        shutil.rmtree(tmp, ignore_errors=True)
    p, w = result["pai"], result["playwright_mcp"]
    lines = [
        "### verify (loopback test site, system Chromium)",
        "",
        "| what | result |",
        "|---|---:|",
        f"| check_many, 100 URLs × {DELAY_MS} ms server delay | {p['check_many_100_wall_ms']} ms "
        f"({p['check_many_vs_slowest']}× the slowest single check; target ≤ 1.5×) |",
        f"| screenshot, first call (starts the browser) | {p['screenshot_first_ms']} ms |",
        f"| screenshot, warm p50 / p95 | {p['screenshot_warm_p50_ms']} / "
        f"{p['screenshot_warm_p95_ms']} ms |",
        f"| verify_deployment (HTTP + page + images + console + screenshot) | "
        f"{p['verify_deployment_ms']} ms, ~{p['verify_deployment_tokens']} tokens |",
    ]
    if "error" in w:
        lines.append(f"| @playwright/mcp | could not run: {w['error']} |")
    else:
        lines.append(
            f"| @playwright/mcp navigate + screenshot (same Chromium), warm | "
            f"{w['navigate_plus_screenshot_warm_ms']} ms, ~{w['result_tokens']} tokens "
            "(no verdict) |"
        )
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "verify.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "verify.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
