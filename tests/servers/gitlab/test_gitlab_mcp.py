"""The GitLab server end to end: the loopback GitLab, the server over stdio, the SDK client,
and membrane (over stdio too) finding what the gitlab server recorded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from pai_core.audit import AuditLog
from tests.conftest import script
from tests.servers.gitlab.conftest import TOKEN
from tests.servers.gitlab.fake_gitlab import FakeGitlab, Job, Project

TOOLS = {
    "search_issues",
    "get_issue",
    "create_issue",
    "comment_issue",
    "update_issue",
    "list_merge_requests",
    "get_merge_request",
    "create_merge_request",
    "comment_merge_request",
    "merge_merge_request",
    "get_file",
    "commit_files",
    "create_branch",
    "compare",
    "list_pipelines",
    "get_pipeline",
    "get_job_log",
    "retry_pipeline",
    "wait_pipeline",
    "link_to_memory",
    "health",
}


def test_issue_commit_pipeline_over_stdio_and_seen_by_membrane(
    fake: FakeGitlab, project: Project, pai_env: dict[str, str], tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    env = {
        **pai_env,
        "PAI_GITLAB_URL": fake.url,
        "PAI_GITLAB_TOKEN_FILE": str(token_file),
        "PAI_GITLAB_MODE": "write",
        "PAI_GITLAB_PROJECTS": "group/app",
        "PAI_GITLAB_DEFAULT_PROJECT": "group/app",
        "PAI_GITLAB_MIN_POLL_S": "0.05",
    }
    fake.add_issue(project, "Backup job fails on full disk")
    pipeline = fake.add_pipeline(
        project,
        "running",
        [Job(81, "deploy", "deploy", "running", f"token {TOKEN}\nok\n".encode())],
        script=["running", "running", "success"],
    )
    fake.fail("GET", r"/issues$", 502)
    progress: list[str] = []
    errlog = tmp_path / "gitlab-stderr.log"

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append(message or "")

    async def run() -> dict[str, Any]:
        got: dict[str, Any] = {}
        params = StdioServerParameters(
            command=script("gitlab"), env={**env, "PAI_GITLAB_LOG_LEVEL": "DEBUG"}
        )
        with errlog.open("w") as err:
            async with stdio_client(params, errlog=err) as (r, w), ClientSession(r, w) as s:
                await _gitlab_session(s, got, pipeline.id, on_progress)
        membrane = StdioServerParameters(command=script("membrane"), env=pai_env)
        async with stdio_client(membrane) as (r, w), ClientSession(r, w) as s:
            await s.initialize()
            sha = got["commit"].structured_content["commit"]["id"]
            got["entity"] = await s.call_tool("get_entity", {"name": f"Commit {sha[:8]}"})
            got["timeline"] = await s.call_tool("timeline", {"since": "1 hour ago"})
        return got

    got = anyio.run(run)
    dupe = got["dupe"].structured_content
    assert not dupe["created"] and dupe["duplicates"][0]["iid"] == 1
    commit = got["commit"].structured_content
    assert not got["commit"].is_error and commit["verified"] and commit["memory"]["remembered"]
    assert got["stale"].is_error and "Conflict" in got["stale"].content[0].text
    assert "nothing was committed" in got["stale"].content[0].text
    merge = got["merge"]
    assert merge.is_error and "PolicyDenied" in merge.content[0].text
    assert "PAI_GITLAB_MODE=full" in merge.content[0].text
    assert got["elsewhere"].is_error and "allowlist" in got["elsewhere"].content[0].text
    log = got["log"].structured_content
    assert "token ***" in log["text"] and log["masked"] >= 1
    assert got["wait"].structured_content["finished"] and len(progress) >= 2
    assert "success" in progress[-1]

    entity = got["entity"].structured_content
    out = {(f["predicate"], f["object"] or f["value"]) for f in entity["outgoing"]}
    assert ("FIXES", "Issue group/app#1") in out and ("PART_OF", "group/app") in out
    groups = {g["group"] for g in got["timeline"].structured_content["groups"]}
    assert "group/app" in groups

    log_path = Path(pai_env["PAI_HOME"]) / "audit.jsonl"
    entries = list(AuditLog(log_path).entries())
    assert [e["action"] for e in entries] == ["gitlab.commit_files"]
    assert AuditLog(log_path).verify().ok
    everything = "".join(str(g) for g in got.values()) + log_path.read_text()
    assert TOKEN not in everything
    server_log = errlog.read_text()
    assert "retrying get /projects/1/issues" in server_log  # after the injected 502
    assert TOKEN not in server_log
    assert len(project.commits) == 2  # the initial one and ours: the stale call sent nothing


async def _gitlab_session(
    s: ClientSession, got: dict[str, Any], pipeline_id: int, on_progress: Any
) -> None:
    await s.initialize()
    tools = {t.name: t for t in (await s.list_tools()).tools}
    assert set(tools) >= TOOLS
    assert tools["merge_merge_request"].annotations.destructive_hint is True
    assert tools["search_issues"].annotations.read_only_hint is True
    assert tools["create_issue"].output_schema is not None
    health = (await s.call_tool("health", {})).structured_content
    assert health["status"] == "ok" and health["details"]["mode"] == "write"
    got["health"] = health
    got["dupe"] = await s.call_tool("create_issue", {"title": "Backup job failing on a full disk"})
    got["file"] = await s.call_tool("get_file", {"path": "README.md"})
    head = got["file"].structured_content["commit_id"]
    got["commit"] = await s.call_tool(
        "commit_files",
        {
            "branch": "main",
            "message": "Rotate backups before the disk fills\n\nFixes #1",
            "actions": [
                {"action": "create", "file_path": "ops/rotate.sh", "content": "rm old\n"},
                {"action": "update", "file_path": "README.md", "content": "# app\n"},
            ],
            "last_commit_id": head,
        },
    )
    got["stale"] = await s.call_tool(
        "commit_files",
        {
            "branch": "main",
            "message": "again",
            "actions": [{"action": "update", "file_path": "README.md", "content": "x"}],
            "last_commit_id": head,
        },
    )
    got["merge"] = await s.call_tool("merge_merge_request", {"iid": 1, "sha": "a" * 40})
    got["elsewhere"] = await s.call_tool("search_issues", {"project": "group/other"})
    got["log"] = await s.call_tool("get_job_log", {"job_id": 81})
    got["wait"] = await s.call_tool(
        "wait_pipeline",
        {"pipeline_id": pipeline_id, "poll_s": 0.05, "timeout_s": 30},
        progress_callback=on_progress,
    )
