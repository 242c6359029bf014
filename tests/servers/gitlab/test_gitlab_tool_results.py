"""A client receives the same results from the gitlab tools through PAI's call path
(pai_core.fastcall) as through the SDK's own Tool.run: content and structuredContent, byte for
byte as they go on the wire, and the same errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
from mcp.server.mcpserver import Context
from mcp.types import CallToolResult

from pai_core import fastcall, sdkseam
from pai_gitlab.server import build_server
from tests.servers.gitlab.conftest import TOKEN, settings_for
from tests.servers.gitlab.fake_gitlab import FakeGitlab, Job, Project


def wire(outcome: Any) -> Any:
    if isinstance(outcome, CallToolResult):
        return outcome.model_dump_json(by_alias=True, exclude_none=True)
    return outcome


async def outcome(call: Any) -> Any:
    try:
        return wire(await call)
    except Exception as exc:
        return (type(exc).__name__, str(exc), type(exc.__cause__).__name__, str(exc.__cause__))


def test_gitlab_tool_results_are_the_same_through_both_paths(
    fake: FakeGitlab, project: Project, tmp_path: Path
) -> None:
    for i in range(3):
        fake.add_issue(project, f"Flaky deploy {i} – «ünïcode»", "details\n" * 3)
    fake.branch(project, "feature")
    fake.push(project, "feature", "Tune the deploy\n\nFixes #1", {"src/app.py": "x = 2\n"})
    mr = fake.add_mr(project, "feature", title="Tune the deploy")
    pipeline = fake.add_pipeline(
        project, "failed", [Job(7, "test", "test", "failed", f"token {TOKEN}\nfail\n".encode())]
    )
    server = build_server(settings_for(fake, tmp_path))
    manager = sdkseam.tool_manager(server)
    calls: list[tuple[str, dict[str, Any]]] = [
        ("search_issues", {"query": "flaky", "per_page": 2}),
        ("search_issues", {"labels": '["bug"]', "page": "1"}),  # JSON in a string, pre-parsed
        ("get_issue", {"iid": 1}),
        ("get_issue", {"iid": 999}),  # NotFound from GitLab
        ("get_issue", {"iid": 0}),  # rejected by the argument model
        ("list_merge_requests", {}),
        ("get_merge_request", {"iid": mr, "file": "src/app.py"}),
        ("get_file", {"path": "README.md"}),
        ("compare", {"base": "main", "head": "feature"}),
        ("list_pipelines", {}),
        ("get_pipeline", {"pipeline_id": pipeline.id}),
        ("get_job_log", {"job_id": 7}),
        ("create_issue", {"title": "Flaky deploy 1", "dry_run": True}),
        ("create_issue", {"title": "Disk full on the runner", "dry_run": True}),
        (
            "commit_files",
            {
                "branch": "main",
                "message": "m",
                "actions": [{"action": "update", "file_path": "README.md", "content": "x"}],
                "last_commit_id": "0" * 40,  # not the head: refused
                "dry_run": True,
            },
        ),
    ]

    async def compare() -> list[tuple[str, Any, Any]]:
        out = []
        for name, arguments in calls:
            tool = manager.get_tool(name)
            assert tool is not None and fastcall.plan_for(tool) is not None, name
            ctx = Context(mcp_server=server)
            sdk = await outcome(tool.run(dict(arguments), ctx, convert_result=True))
            ours = await outcome(fastcall.run(tool, dict(arguments), ctx, True))
            out.append((name, sdk, ours))
        return out

    results = anyio.run(compare)
    for name, sdk, ours in results:
        assert ours == sdk, name
    errors = [name for name, sdk, _ in results if isinstance(sdk, tuple)]
    assert errors == ["get_issue", "get_issue", "commit_files"]  # 404, iid 0, stale guard
    assert TOKEN not in "".join(str(r) for r in results)
