"""GitLab: tool latency over raw python-gitlab for the same requests, the size of
get_merge_request's result for a 200-file MR, and the time to summarise 50 commits.

Both sides talk to the same loopback GitLab (tests/servers/gitlab/fake_gitlab.py) run in
its own process, so the ratio is an upper bound: against a real GitLab every request costs tens of
milliseconds more on both sides and the server's fixed overhead weighs less.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import anyio

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from pai_core.settings import load_settings  # noqa: E402
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
        conn.recv()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    runs = 15 if args.quick else 101
    import os

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

        def http(path: str, **query: Any) -> Callable[[], Any]:
            return lambda: gl.http_request("get", path, query_data=query).json()

        issues_q = {"search": "flaky", "state": "opened", "order_by": "updated_at"}
        http_search = http(f"/projects/{p.id}/issues", **issues_q, page=1, per_page=20)

        def http_mr() -> Any:
            return (
                http(f"/projects/{p.id}/merge_requests/{mr}")(),
                http(f"/projects/{p.id}/merge_requests/{mr}/diffs", page=1, per_page=50)(),
            )

        http_file = http(f"/projects/{p.id}/repository/files/README.md", ref="main")

        Case = tuple[Callable[[], Any], Callable[[], Any], Callable[[], Any], str, dict[str, Any]]
        cases: dict[str, Case] = {
            "search_issues": (
                raw_search,
                http_search,
                lambda: svc.issues.search(None, "flaky"),
                "search_issues",
                {"query": "flaky"},
            ),
            "get_merge_request": (
                raw_mr,
                http_mr,
                lambda: svc.mrs.get(None, mr),
                "get_merge_request",
                {"iid": mr},
            ),
            "get_file": (
                raw_file,
                http_file,
                lambda: svc.repo.get_file(None, "README.md"),
                "get_file",
                {"path": "README.md"},
            ),
        }

        async def measure() -> dict[str, dict[str, float]]:
            # Interleaved, one event loop: raw, service and tool see the same machine load.
            out: dict[str, dict[str, float]] = {}
            for name, (raw, low, service, tool_name, arguments) in cases.items():
                samples: dict[str, list[float]] = {
                    k: [] for k in ("raw", "http", "service", "tool")
                }
                for i in range(runs + 2):
                    for kind in samples:
                        start = time.perf_counter()
                        if kind == "raw":
                            raw()
                        elif kind == "http":
                            low()
                        elif kind == "service":
                            service()
                        else:
                            await server.call_tool(tool_name, arguments)
                        if i >= 2:
                            samples[kind].append(time.perf_counter() - start)
                r, h, s, t = (statistics.median(v) for v in samples.values())
                out[name] = {
                    "python_gitlab_ms": round(r * 1000, 3),
                    "python_gitlab_http_ms": round(h * 1000, 3),
                    "tool_vs_http_ratio": round(t / h, 3),
                    "service_ms": round(s * 1000, 3),
                    "tool_ms": round(t * 1000, 3),
                    "service_ratio": round(s / r, 3),
                    "tool_ratio": round(t / r, 3),
                }
            return out

        latency = anyio.run(measure)

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
        "latency": latency,
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
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "gitlab.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "### GitLab: overhead over raw python-gitlab, MR result size, MR summary time",
        "",
        "| request | python-gitlab managers (ms) | python-gitlab http_request (ms) | service (ms) "
        "| MCP tool, in process (ms) | tool / managers | tool / http_request |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, v in latency.items():
        lines.append(
            f"| {name} | {v['python_gitlab_ms']} | {v['python_gitlab_http_ms']} | "
            f"{v['service_ms']} | {v['tool_ms']} | {v['tool_ratio']}× | "
            f"{v['tool_vs_http_ratio']}× |"
        )
    lines += [
        "",
        "Medians of interleaved runs against a loopback GitLab in another process (target: "
        "tool ≤ 1.1× the raw call).",
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
