"""GitLab: tool latency over raw python-gitlab for the same requests, the size of
get_merge_request's result for a 200-file MR, and the time to summarise 50 commits.

Both sides talk to the same loopback GitLab (tests/servers/gitlab/fake_gitlab.py) run in
its own process, so the ratio is an upper bound: against a real GitLab every request costs tens of
milliseconds more on both sides and the server's fixed overhead weighs less. The same calls are
also measured with every answer of that GitLab delayed by 20 ms (``GITLAB_LATENCY_S``); the
zero-delay rows stay the headline.

The raw calls are python-gitlab as a user writes it: its manager API (``project.issues.list``)
and its lowest level (``gl.http_request``), both on a default session. Beside them, for the
tool's own cost: ``http_request`` on a session that reads the proxy variables once (as the
server's client does: pai_gitlab.client), the service called directly, and the service on a
worker thread (the hop every sync tool of an async server takes). The tool's overhead is split
into that hop and the rest of the call path (argument validation, error mapping, result to
JSON text and structuredContent). The hop is measured both ways: the call path's own
(``pai_core.fastcall.on_worker``) and ``anyio.to_thread.run_sync`` (what the SDK's
``Tool.run`` uses).

Unless ``--no-stdio`` is given, the same tools are also called end to end through the SDK
client over stdio, against the server's console script, and that time is taken apart with calls measured in the
same interleaved rounds: a line echoed through a child process (the pipes and two process
wake-ups), ``ping`` and ``tools/call`` written as raw JSON-RPC lines to a second server
process (the server's fixed cost per message, and the tool's), ``ping`` through the SDK
client (the client's fixed cost), and the client's check of the result against the tool's
output schema, timed alone.
"""

from __future__ import annotations

import argparse
import inspect
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import anyio

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from pai_core.fastcall import on_worker  # noqa: E402
from pai_core.settings import load_settings  # noqa: E402
from pai_gitlab.client import read_environment_once  # noqa: E402
from pai_gitlab.server import build_server, build_service  # noqa: E402
from pai_gitlab.settings import GitlabSettings  # noqa: E402
from pai_gitlab.summary import summarize  # noqa: E402
from tests.servers.gitlab.fake_gitlab import FakeGitlab  # noqa: E402

TOKEN = "glpat-benchTOKEN-0123456789abcd"


def timed(fn: Callable[[], Any], runs: int) -> float:
    """Median seconds of ``fn`` over ``runs`` calls (after two warm-up calls)."""
    for _ in range(2):
        fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def serve(conn: Connection) -> None:
    """The loopback GitLab in its own process (as a real one would be), with the data."""
    with FakeGitlab({TOKEN: ("alice", "maintainer")}) as fake:
        p = fake.add_project("group/app", {"README.md": "# app\n" * 50})
        for i in range(40):
            fake.add_issue(p, f"Flaky test {i} in the deploy stage", "details " * 20)
        fake.branch(p, "big")
        for c in range(50):
            changes = {f"area{c % 7}/file{j}.py": f"v{c}\n" * 5 for j in range(c * 4, c * 4 + 4)}
            fake.push(p, "big", f"Change {c}: tune area{c % 7}\n\nRefs #{c % 9 + 1}", changes)
        mr = fake.add_mr(p, "big", title="Big change")
        conn.send((fake.url, p.id, mr))
        while (command := conn.recv()) != "stop":
            fake.latency_s = float(command[1])  # ("latency", seconds)
            conn.send("ok")


Cases = dict[str, tuple[dict[str, Callable[[], Any]], dict[str, Any]]]


async def medians(calls: dict[str, Callable[[], Any]], runs: int) -> dict[str, float]:
    """Median seconds of each call, run interleaved (one of each in turn) after two warm-ups;
    a call that returns an awaitable is awaited."""
    samples: dict[str, list[float]] = {k: [] for k in calls}
    for i in range(runs + 2):
        for kind, call in calls.items():
            start = time.perf_counter()
            got = call()
            if inspect.isawaitable(got):
                await got
            if i >= 2:
                samples[kind].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in samples.items()}


def _nothing() -> None:
    return None


async def measure_hop(runs: int) -> dict[str, float]:
    """The hop alone, for a function that does nothing: the call path's and anyio's (µs)."""
    m = await medians(
        {
            "on_worker": lambda: on_worker(_nothing),
            "anyio": lambda: anyio.to_thread.run_sync(_nothing),
        },
        runs,
    )
    return {
        "fastcall_on_worker_us": round(m["on_worker"] * 1e6, 1),
        "anyio_to_thread_us": round(m["anyio"] * 1e6, 1),
        "runs": runs,
    }


def _tool_against_raw(m: dict[str, float]) -> dict[str, float]:
    """The tool's median against python-gitlab's managers and http_request (ms, ratios)."""
    return {
        "python_gitlab_ms": round(m["raw"] * 1000, 3),
        "python_gitlab_http_ms": round(m["http"] * 1000, 3),
        "tool_ms": round(m["tool"] * 1000, 3),
        "tool_ratio": round(m["tool"] / m["raw"], 3),
        "tool_vs_http_ratio": round(m["tool"] / m["http"], 3),
        "overhead_vs_http_ms": round((m["tool"] - m["http"]) * 1000, 3),
    }


def _ratio_rows(results: dict[str, dict[str, Any]]) -> list[str]:
    header = [
        "| request | python-gitlab managers (ms) | python-gitlab http_request (ms) "
        "| MCP tool, in process (ms) | tool / managers | tool / http_request "
        "| overhead over http_request (ms) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    return header + [
        f"| {name} | {v['python_gitlab_ms']} | {v['python_gitlab_http_ms']} | "
        f"{v['tool_ms']} | {v['tool_ratio']}× | {v['tool_vs_http_ratio']}× | "
        f"{v['overhead_vs_http_ms']} |"
        for name, v in results.items()
    ]


async def measure(
    cases: Cases, services: dict[str, Callable[[], Any]], server: Any, runs: int
) -> dict[str, dict[str, float]]:
    """Interleaved medians, one event loop: every kind sees the same machine load."""
    out: dict[str, dict[str, float]] = {}
    for name, (raw_calls, arguments) in cases.items():
        service = services[name]
        m = await medians(
            {
                **raw_calls,
                "service": service,
                "thread": lambda service=service: on_worker(service),
                "anyio_thread": lambda service=service: anyio.to_thread.run_sync(service),
                "tool": lambda name=name, arguments=arguments: server.call_tool(name, arguments),
            },
            runs,
        )
        out[name] = {
            **_tool_against_raw(m),
            "http_env_once_ms": round(m["http_once"] * 1000, 3),
            "service_ms": round(m["service"] * 1000, 3),
            "service_on_thread_ms": round(m["thread"] * 1000, 3),
            "service_ratio": round(m["service"] / m["raw"], 3),
            "overhead_vs_http_env_once_ms": round((m["tool"] - m["http_once"]) * 1000, 3),
            "thread_hop_ms": round((m["thread"] - m["service"]) * 1000, 3),
            "anyio_thread_hop_ms": round((m["anyio_thread"] - m["service"]) * 1000, 3),
            "call_path_ms": round((m["tool"] - m["thread"]) * 1000, 3),
        }
    return out


GITLAB_LATENCY_S = 0.02
"""The delayed rows: every GitLab answer waits 20 ms, an assumed quick self-hosted instance
on the same network (GitLab.com and busy instances answer slower, which shrinks the ratio)."""


async def measure_delayed(cases: Cases, server: Any, runs: int) -> dict[str, dict[str, float]]:
    """Managers, http_request and the tool against a GitLab that answers in 20 ms."""
    out: dict[str, dict[str, float]] = {}
    for name, (raw_calls, arguments) in cases.items():
        m = await medians(
            {
                "raw": raw_calls["raw"],
                "http": raw_calls["http"],
                "tool": lambda name=name, arguments=arguments: server.call_tool(name, arguments),
            },
            runs,
        )
        out[name] = _tool_against_raw(m)
    return out


def stdio_env(url: str, tmp: Path) -> dict[str, str]:
    token_file = tmp / "token"
    token_file.write_text(TOKEN + "\n")
    return {
        **os.environ,
        "PAI_HOME": str(tmp / "stdio-home"),
        "PAI_GITLAB_URL": url,
        "PAI_GITLAB_TOKEN_FILE": str(token_file),
        "PAI_GITLAB_MODE": "read-only",
        "PAI_GITLAB_DEFAULT_PROJECT": "group/app",
        "PAI_GITLAB_LOG_LEVEL": "WARNING",
    }


class LinePeer:
    """A child process spoken to in lines over its stdin/stdout, with blocking reads."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._in, self._out = self.proc.stdin, self.proc.stdout

    def round_trip(self, line: bytes) -> bytes:
        self.send(line)
        return self._out.readline()

    def send(self, line: bytes) -> None:
        self._in.write(line)
        self._in.flush()

    def close(self) -> None:
        self._in.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class RawJsonRpc(LinePeer):
    """The server spoken to in raw JSON-RPC lines: no SDK client in the way."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        super().__init__(argv, env)
        self._id = 0
        self.request(
            "initialize",
            {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "bench", "version": "0"},
            },
        )
        self.send(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')

    def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self._id += 1
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": self._id, "method": method}
        if params is not None:
            message["params"] = params
        got = json.loads(self.round_trip(json.dumps(message).encode() + b"\n"))
        while got.get("id") != self._id:  # a notification: the answer follows
            got = json.loads(self._out.readline())
        assert "result" in got and not got["result"].get("isError"), got
        return dict(got["result"])


ECHO = (
    "import sys\n"
    "for line in sys.stdin.buffer:\n"
    "    sys.stdout.buffer.write(line)\n"
    "    sys.stdout.buffer.flush()\n"
)
"""The echoing child: a line in, the same line out, flushed (the pipes' round trip)."""


async def measure_stdio(
    cases: Cases, env: dict[str, str], runs: int
) -> dict[str, dict[str, float]]:
    """The same tools through the SDK client over stdio, interleaved with the raw calls and
    with the calls that take the end-to-end time apart (see the module docstring)."""
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    command = str(Path(sys.executable).parent / "pai-gitlab")
    params = StdioServerParameters(command=command, env=env)
    raw = RawJsonRpc([command], env)
    echo = LinePeer([sys.executable, "-c", ECHO])
    out: dict[str, dict[str, float]] = {}
    try:
        with open(os.devnull, "w") as err, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ping is deprecated from 2026-07-28 on
            async with stdio_client(params, errlog=err) as (r, w), ClientSession(r, w) as session:
                await session.initialize()
                for name, (raw_calls, arguments) in cases.items():
                    first = await session.call_tool(name, arguments)

                    async def call(name: str = name, arguments: dict[str, Any] = arguments) -> None:
                        result = await session.call_tool(name, arguments)
                        assert not result.is_error, result.content

                    line = json.dumps(first.structured_content).encode() + b"\n"
                    m = await medians(
                        {
                            "raw": raw_calls["raw"],
                            "http": raw_calls["http"],
                            "stdio": call,
                            "sdk_ping": session.send_ping,
                            "raw_tool": lambda n=name, a=arguments: raw.request(
                                "tools/call", {"name": n, "arguments": a}
                            ),
                            "raw_ping": lambda: raw.request("ping"),
                            "echo": lambda line=line: echo.round_trip(line),
                            "validate": lambda n=name, r=first: session.validate_tool_result(n, r),
                        },
                        runs,
                    )
                    ms = {k: v * 1000 for k, v in m.items()}
                    out[name] = {
                        "stdio_tool_ms": round(ms["stdio"], 3),
                        "python_gitlab_ms": round(ms["raw"], 3),
                        "python_gitlab_http_ms": round(ms["http"], 3),
                        "stdio_vs_managers_ratio": round(m["stdio"] / m["raw"], 3),
                        "stdio_vs_http_ratio": round(m["stdio"] / m["http"], 3),
                        "stdio_overhead_vs_http_ms": round(ms["stdio"] - ms["http"], 3),
                        "raw_jsonrpc_tool_ms": round(ms["raw_tool"], 3),
                        "raw_jsonrpc_ping_ms": round(ms["raw_ping"], 3),
                        "sdk_client_ping_ms": round(ms["sdk_ping"], 3),
                        "echo_round_trip_ms": round(ms["echo"], 3),
                        "result_line_bytes": len(line),
                        # the parts, each a difference of medians measured in the same rounds
                        "pipes_ms": round(ms["echo"], 3),
                        "server_per_message_ms": round(ms["raw_ping"] - ms["echo"], 3),
                        "server_tool_ms": round(ms["raw_tool"] - ms["raw_ping"], 3),
                        "sdk_client_per_request_ms": round(ms["sdk_ping"] - ms["raw_ping"], 3),
                        "sdk_client_per_result_ms": round(
                            (ms["stdio"] - ms["raw_tool"]) - (ms["sdk_ping"] - ms["raw_ping"]), 3
                        ),
                        "sdk_client_schema_check_ms": round(ms["validate"], 3),
                    }
    finally:
        raw.close()
        echo.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--stdio",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also call the tools through the SDK client over stdio (default; --no-stdio skips)",
    )
    args = parser.parse_args()
    runs = 15 if args.quick else 101

    tmp = Path(tempfile.mkdtemp(prefix="pai-gitlab-bench-"))
    os.environ["PAI_HOME"] = str(tmp / "home")
    parent, child = multiprocessing.Pipe()
    gitlab_proc = multiprocessing.Process(target=serve, args=(child,), daemon=True)
    gitlab_proc.start()
    try:
        url, project_id, mr = parent.recv()
        fake = SimpleNamespace(url=url)
        p = SimpleNamespace(id=project_id)
        settings = load_settings(
            GitlabSettings,
            tmp / "none.toml",
            url=fake.url,
            token=TOKEN,
            mode="full",
            default_project="group/app",
            data_dir=tmp / "data",
            audit_log=tmp / "audit.jsonl",
        )
        svc = build_service(settings)
        server = build_server(settings)

        import gitlab

        gl = gitlab.Gitlab(fake.url, private_token=TOKEN)
        raw_project = gl.projects.get(p.id, lazy=True)

        def raw_search() -> Any:
            return raw_project.issues.list(
                search="flaky",
                state="opened",
                order_by="updated_at",
                sort="desc",
                page=1,
                per_page=20,
            )

        def raw_mr() -> Any:
            got = raw_project.mergerequests.get(mr)
            files = gl.http_list(f"/projects/{p.id}/merge_requests/{mr}/diffs", page=1, per_page=50)
            return got, files

        def raw_file() -> Any:
            return raw_project.files.get("README.md", ref="main")

        gl_once = gitlab.Gitlab(fake.url, private_token=TOKEN)
        read_environment_once(gl_once)

        def http(path: str, client: Any = gl, **query: Any) -> Callable[[], Any]:
            return lambda: client.http_request("get", path, query_data=query).json()

        issues_q = {"search": "flaky", "state": "opened", "order_by": "updated_at"}
        http_search = http(f"/projects/{p.id}/issues", **issues_q, page=1, per_page=20)

        def http_mr() -> Any:
            return (
                http(f"/projects/{p.id}/merge_requests/{mr}")(),
                http(f"/projects/{p.id}/merge_requests/{mr}/diffs", page=1, per_page=50)(),
            )

        http_file = http(f"/projects/{p.id}/repository/files/README.md", ref="main")
        once_search = http(f"/projects/{p.id}/issues", gl_once, **issues_q, page=1, per_page=20)
        once_file = http(f"/projects/{p.id}/repository/files/README.md", gl_once, ref="main")

        def once_mr() -> Any:
            return (
                http(f"/projects/{p.id}/merge_requests/{mr}", gl_once)(),
                http(f"/projects/{p.id}/merge_requests/{mr}/diffs", gl_once, page=1, per_page=50)(),
            )

        services: dict[str, Callable[[], Any]] = {
            "search_issues": lambda: svc.issues.search(None, "flaky"),
            "get_merge_request": lambda: svc.mrs.get(None, mr),
            "get_file": lambda: svc.repo.get_file(None, "README.md"),
        }
        cases: dict[str, tuple[dict[str, Callable[[], Any]], dict[str, Any]]] = {
            "search_issues": (
                {"raw": raw_search, "http": http_search, "http_once": once_search},
                {"query": "flaky"},
            ),
            "get_merge_request": (
                {"raw": raw_mr, "http": http_mr, "http_once": once_mr},
                {"iid": mr},
            ),
            "get_file": (
                {"raw": raw_file, "http": http_file, "http_once": once_file},
                {"path": "README.md"},
            ),
        }
        latency = anyio.run(measure, cases, services, server, runs)
        hop = anyio.run(measure_hop, runs * 10)
        stdio = (
            anyio.run(measure_stdio, cases, stdio_env(fake.url, tmp), runs) if args.stdio else {}
        )
        parent.send(("latency", GITLAB_LATENCY_S))
        parent.recv()
        delayed = anyio.run(measure_delayed, cases, server, max(9, runs // 3))
        parent.send(("latency", 0.0))
        parent.recv()

        detail = anyio.run(server.call_tool, "get_merge_request", {"iid": mr})
        page_chars = len(
            json.dumps(detail[1] if isinstance(detail, tuple) else detail, default=str)
        )
        all_diffs = gl.http_list(f"/projects/{p.id}/merge_requests/{mr}/diffs", get_all=True)
        raw_chars = len(json.dumps(raw_project.mergerequests.get(mr).asdict())) + len(
            json.dumps(all_diffs)
        )
        n_files = len(all_diffs)

        cmp = svc.base.read(
            "/repository/compare",
            "compare",
            svc.base.project(None),
            **{"from": "main", "to": "big"},
        )
        commits, diffs = cmp["commits"], cmp["diffs"]
        summary_s = timed(lambda: summarize("group/app", commits, diffs, "Prose."), runs)
        create_s = timed(lambda: svc.mrs.create(None, "big", dry_run=True), max(5, runs // 5))
    finally:
        parent.send("stop")
        gitlab_proc.join(10)

    result = {
        "benchmark": "gitlab",
        "backend": "loopback GitLab REST v4 (another process)",
        "runs": runs,
        "loadavg": Path("/proc/loadavg").read_text().split()[:3],
        "latency": latency,
        "hop_alone": hop,
        "stdio": stdio,
        "gitlab_latency_ms": GITLAB_LATENCY_S * 1000,
        "latency_delayed": delayed,
        "worst_tool_ratio": max(v["tool_ratio"] for v in latency.values()),
        "worst_tool_vs_http_ratio": max(v["tool_vs_http_ratio"] for v in latency.values()),
        "mr_files": n_files,
        "get_merge_request_tokens": page_chars // 4,
        "unpaginated_mr_with_diffs_tokens": raw_chars // 4,
        "summary_commits": len(commits),
        "summary_files": len(diffs),
        "summarize_ms": round(summary_s * 1000, 3),
        "create_merge_request_dry_run_ms": round(create_s * 1000, 2),
    }
    out = HERE / ("results/quick" if args.quick else "results")  # never over the record
    out.mkdir(parents=True, exist_ok=True)
    (out / "gitlab.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "### GitLab: overhead over raw python-gitlab, MR result size, MR summary time",
        "",
        *_ratio_rows(latency),
        "",
        f"The same calls against a GitLab whose every answer waits "
        f"{GITLAB_LATENCY_S * 1000:g} ms (an assumed quick self-hosted instance on the same "
        f"network; {max(9, runs // 3)} interleaved runs):",
        "",
        *_ratio_rows(delayed),
    ]
    lines += [
        "",
        "Where the tool's time goes (ms): http_request with the proxy variables read once (as "
        "the server's client does), the service called directly, the service on a worker "
        "thread, and the tool's overhead split into that thread hop and the rest of the call "
        "path (validation, error mapping, JSON text + structuredContent).",
        "",
        "| request | http_request, env read once | service | service on a worker thread "
        "| thread hop | the same hop by anyio.to_thread | call path "
        "| tool over http_request, env read once |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, v in latency.items():
        lines.append(
            f"| {name} | {v['http_env_once_ms']} | {v['service_ms']} | "
            f"{v['service_on_thread_ms']} | {v['thread_hop_ms']} | {v['anyio_thread_hop_ms']} | "
            f"{v['call_path_ms']} | {v['overhead_vs_http_env_once_ms']} |"
        )
    lines += [
        "",
        f"The hop alone, for a function that does nothing ({hop['runs']} interleaved runs): "
        f"{hop['fastcall_on_worker_us']} µs by the call path's worker (`fastcall.on_worker`), "
        f"{hop['anyio_to_thread_us']} µs by `anyio.to_thread.run_sync` (the SDK's).",
    ]
    if stdio:
        lines += [
            "",
            "End to end through the SDK client over stdio (JSON-RPC, pipes, the client's own "
            "parsing included), interleaved with the raw calls:",
            "",
            "| request | tool over stdio (ms) | managers (ms) | http_request (ms) "
            "| stdio / managers | stdio / http_request | overhead over http_request (ms) |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for name, v in stdio.items():
            lines.append(
                f"| {name} | {v['stdio_tool_ms']} | {v['python_gitlab_ms']} | "
                f"{v['python_gitlab_http_ms']} | {v['stdio_vs_managers_ratio']}× | "
                f"{v['stdio_vs_http_ratio']}× | {v['stdio_overhead_vs_http_ms']} |"
            )
        lines += [
            "",
            "Where the stdio time goes (ms, medians from the same rounds): the pipes (a line of "
            "the result's size echoed by a child process), the server's cost per message "
            "(raw JSON-RPC `ping` less the echo: stdin read, JSON-RPC parse, dispatch, the "
            "answer written), the tool in the server (raw `tools/call` less raw `ping`), the "
            "SDK client's cost per request (its `ping` less the raw one) and per result (the "
            "rest: parsing the answer and checking it against the output schema, the check "
            "alone in the last column).",
            "",
            "| request | end to end | pipes | server per message | tool in the server "
            "| SDK client per request | SDK client per result | of which the schema check |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for name, v in stdio.items():
            lines.append(
                f"| {name} | {v['stdio_tool_ms']} | {v['pipes_ms']} | "
                f"{v['server_per_message_ms']} | {v['server_tool_ms']} | "
                f"{v['sdk_client_per_request_ms']} | {v['sdk_client_per_result_ms']} | "
                f"{v['sdk_client_schema_check_ms']} |"
            )
    lines += [
        "",
        f"Medians of {runs} interleaved runs against a loopback GitLab in another process, load "
        f"average {' '.join(result['loadavg'])} (target: tool ≤ 1.1× the raw call).",
        "",
        f"get_merge_request for a {n_files}-file MR: {result['get_merge_request_tokens']} tokens "
        f"(first page of 50 files, ~4 chars a token), against "
        f"{result['unpaginated_mr_with_diffs_tokens']} for the MR with every diff unpaginated.",
        f"MR summary from {len(commits)} commits and {len(diffs)} files: "
        f"{result['summarize_ms']} ms to assemble; create_merge_request end to end (dry run, "
        f"compare included) {result['create_merge_request_dry_run_ms']} ms.",
    ]
    (out / "gitlab.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
