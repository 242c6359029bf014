"""verify: check_many over 100 slow loopback URLs against the slowest single check; the first
screenshot (browser start) and back-to-back warm ones; then rounds in which PAI's screenshot,
count_images and verify_deployment and @playwright/mcp's navigate + screenshot on the same
Chromium take turns, compared on time and result size (tokens ≈ bytes / 4). Everything runs
against a test site on 127.0.0.1."""

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
from contextlib import AsyncExitStack
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


def _held(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _p50_p95(seconds: list[float]) -> tuple[float, float]:
    ordered = sorted(seconds)
    p50, p95 = ordered[len(ordered) // 2], ordered[int(0.95 * (len(ordered) - 1))]
    return round(p50 * 1000, 1), round(p95 * 1000, 1)


def _size(result: Any) -> int:
    return len(json.dumps([c.model_dump(mode="json") for c in result.content]))


async def pai(s: ClientSession, site: str, out: dict[str, Any]) -> None:
    """check_many, the first screenshot (browser start) and back-to-back warm screenshots."""
    one = await s.call_tool("http_check", {"url": f"{site}/slow?ms={DELAY_MS}"})
    out["single_check_ms"] = one.structured_content["total_ms"]
    checks = [{"url": f"{site}/slow?ms={DELAY_MS}&i={i}"} for i in range(100)]
    walls, inside = [], []
    for _ in range(5):
        t = time.perf_counter()
        many = await s.call_tool("check_many", {"checks": checks, "concurrency": 100})
        walls.append((time.perf_counter() - t) * 1000)
        sc = many.structured_content
        inside.append(sc["wall_ms"])
        assert sc["passed"] == 100, [r for r in sc["rows"] if not r["ok"]][:3]
    out["check_many_100_wall_ms"] = round(statistics.median(walls), 1)
    out["check_many_100_server_wall_ms"] = round(statistics.median(inside), 1)
    out["check_many_vs_slowest"] = round(out["check_many_100_wall_ms"] / DELAY_MS, 2)
    t = time.perf_counter()
    first = await s.call_tool("screenshot", {"url": f"{site}/", "include_image": False})
    out["screenshot_first_ms"] = round((time.perf_counter() - t) * 1000, 1)
    assert not first.is_error, first.content
    back_to_back = []
    for _ in range(10):
        t = time.perf_counter()
        await s.call_tool("screenshot", {"url": f"{site}/", "include_image": False})
        back_to_back.append(time.perf_counter() - t)
    out["screenshot_back_to_back_p50_ms"] = _p50_p95(back_to_back)[0]


async def interleaved(
    s: ClientSession, peer: ClientSession | None, site: str, runs: int, out: dict[str, Any]
) -> dict[str, Any]:
    """Each round: PAI's screenshot, count_images and verify_deployment, then the peer's
    navigate + screenshot, so both see the same load on the machine."""
    shots, counts, verdicts, peers = [], [], [], []
    peer_out: dict[str, Any] = {}
    for _ in range(runs + 1):
        t = time.perf_counter()
        await s.call_tool("screenshot", {"url": f"{site}/", "include_image": False})
        shots.append(time.perf_counter() - t)
        t = time.perf_counter()
        count = await s.call_tool("count_images", {"url": f"{site}/"})
        counts.append(time.perf_counter() - t)
        assert count.structured_content["loaded"] == 2, count.structured_content
        t = time.perf_counter()
        verdict = await s.call_tool(
            "verify_deployment", {"url": f"{site}/", "min_images": 2, "title_contains": "PAI"}
        )
        verdicts.append(time.perf_counter() - t)
        assert verdict.structured_content["passed"], verdict.structured_content
        out["verify_deployment_tokens"] = _size(verdict) // 4
        if peer is not None:
            t = time.perf_counter()
            nav = await peer.call_tool("browser_navigate", {"url": f"{site}/"})
            shot = await peer.call_tool("browser_take_screenshot", {})
            peers.append(time.perf_counter() - t)
            assert not nav.is_error, nav.content
            peer_out["result_tokens"] = (_size(nav) + _size(shot)) // 4
    # the first round warms count_images and verify_deployment (and the peer's browser)
    out["screenshot_warm_p50_ms"], out["screenshot_warm_p95_ms"] = _p50_p95(shots[1:])
    out["count_images_warm_p50_ms"], out["count_images_warm_p95_ms"] = _p50_p95(counts[1:])
    out["verify_deployment_ms"], out["verify_deployment_p95_ms"] = _p50_p95(verdicts[1:])
    if peers:
        peer_out["navigate_plus_screenshot_first_ms"] = round(peers[0] * 1000, 1)
        warm, p95 = _p50_p95(peers[1:])
        peer_out["navigate_plus_screenshot_warm_ms"] = warm
        peer_out["navigate_plus_screenshot_warm_p95_ms"] = p95
        peer_out["note"] = (
            "browser primitives only: the model still has to read the snapshot to judge "
            "title, images and console errors"
        )
    return peer_out


async def measure(
    site: str, env: dict[str, str], cli: Path | None, tmp: Path, runs: int
) -> dict[str, Any]:
    out: dict[str, Any] = {"loadavg_start": _loadavg()}
    params = StdioServerParameters(command=str(BIN / "pai-verify"), env=env)
    async with AsyncExitStack() as stack:
        r, w = await stack.enter_async_context(stdio_client(params))
        s = await stack.enter_async_context(ClientSession(r, w))
        await s.initialize()
        await s.list_tools()
        await pai(s, site, out)
        peer: ClientSession | None = None
        peer_error = "not installed (npm or quick run)"
        if cli is not None:
            try:
                pr, pw = await stack.enter_async_context(stdio_client(_peer_params(cli, tmp)))
                peer = await stack.enter_async_context(ClientSession(pr, pw))
                await peer.initialize()
                await peer.list_tools()
            except Exception as exc:  # report, do not hide, a peer that cannot run here
                peer, peer_error = None, f"{type(exc).__name__}: {exc}"
        peer_out = await interleaved(s, peer, site, runs, out)
    out["loadavg_end"] = _loadavg()
    return {"pai": out, "playwright_mcp": peer_out or {"error": peer_error}}


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


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


def _peer_params(cli: Path, tmp: Path) -> StdioServerParameters:
    return StdioServerParameters(
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
        cli = None if args.quick else install_playwright_mcp(tmp / "npm")
        result: dict[str, Any] = {
            "benchmark": "verify",
            "delay_ms": DELAY_MS,
            **anyio.run(measure, site, env, cli, tmp, 5 if args.quick else 20),
        }
    finally:
        server.stdin.close()
        server.wait(10)
        server.stdout.close()
        shutil.rmtree(tmp, ignore_errors=True)
    p, w = result["pai"], result["playwright_mcp"]
    lines = [
        "### verify (loopback test site, system Chromium)",
        "",
        "PAI and @playwright/mcp (navigate + screenshot, same Chromium) take turns in each round, "
        f"so both see the same load (load average {p['loadavg_start']} at start, "
        f"{p['loadavg_end']} at end, 2 shared cores).",
        "",
        "| what | result | target |",
        "|---|---:|---|",
        f"| check_many, 100 URLs × {DELAY_MS} ms server delay | {p['check_many_100_wall_ms']} ms "
        f"= {p['check_many_vs_slowest']}× the delay ({p['check_many_100_server_wall_ms']} ms "
        f"inside the server) | ≤ 1.5× {_held(p['check_many_vs_slowest'] <= 1.5)} |",
        f"| screenshot, first call (starts the browser) | {p['screenshot_first_ms']} ms | |",
        f"| screenshot, back to back p50 | {p['screenshot_back_to_back_p50_ms']} ms | |",
    ]
    if "error" in w:
        lines += [
            f"| screenshot, warm p50 / p95 | {p['screenshot_warm_p50_ms']} / "
            f"{p['screenshot_warm_p95_ms']} ms | |",
            f"| count_images, warm p50 / p95 | {p['count_images_warm_p50_ms']} / "
            f"{p['count_images_warm_p95_ms']} ms | |",
            f"| verify_deployment (HTTP + page + images + console + screenshot) | "
            f"{p['verify_deployment_ms']} ms, ~{p['verify_deployment_tokens']} tokens | |",
            f"| @playwright/mcp | could not run: {w['error']} | |",
        ]
    else:
        peer = w["navigate_plus_screenshot_warm_ms"]

        def vs(ms: float, limit: float) -> str:
            return f"{ms / peer:.2f}× | ≤ {limit}× {_held(ms / peer <= limit)}"

        lines += [
            f"| @playwright/mcp navigate + screenshot, warm p50 / p95 | {peer} / "
            f"{w['navigate_plus_screenshot_warm_p95_ms']} ms, ~{w['result_tokens']} tokens "
            "(no verdict) | |",
            f"| screenshot, warm p50 / p95 | {p['screenshot_warm_p50_ms']} / "
            f"{p['screenshot_warm_p95_ms']} ms = {vs(p['screenshot_warm_p50_ms'], 1.0)} |",
            f"| count_images, warm p50 / p95 | {p['count_images_warm_p50_ms']} / "
            f"{p['count_images_warm_p95_ms']} ms = {vs(p['count_images_warm_p50_ms'], 1.0)} |",
            f"| verify_deployment (HTTP + page + images + console + screenshot) p50 | "
            f"{p['verify_deployment_ms']} ms = {vs(p['verify_deployment_ms'], 1.5)} |",
            f"| result size, verify_deployment vs @playwright/mcp | "
            f"~{p['verify_deployment_tokens']} vs ~{w['result_tokens']} tokens "
            f"({w['result_tokens'] / p['verify_deployment_tokens']:.0f}× smaller) | ~15× |",
        ]
    out = HERE / ("results/quick" if args.quick else "results")  # never over the record
    out.mkdir(parents=True, exist_ok=True)
    (out / "verify.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "verify.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
