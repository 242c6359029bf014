"""The GitLab service against the loopback GitLab: every tool's behaviour and its guards."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pai_core.audit import AuditLog
from pai_core.errors import BackendUnavailable, Conflict, NotFound, PaiError, PolicyDenied
from pai_core.memory import open_memory
from pai_gitlab.models import CommitAction
from pai_gitlab.service import GitlabService
from tests.servers.gitlab.conftest import GUEST_TOKEN, TOKEN, mutations, settings_for
from tests.servers.gitlab.fake_gitlab import FakeGitlab, Job, Project

Make = Callable[..., GitlabService]


def facts_of(tmp_path: Path, fake: FakeGitlab, name: str) -> list[tuple[str, str | None, str]]:
    mem = open_memory(settings_for(fake, tmp_path).memory)
    entity = mem.graph.get_entity(name)
    return [(f.predicate, f.object or f.value, f.source) for f in entity.outgoing if f.current]


# ---------------------------------------------------------------------------- issues
def test_search_paginates_with_gitlab_headers(
    svc: GitlabService, fake: FakeGitlab, project: Project
) -> None:
    for i in range(25):
        fake.add_issue(project, f"Flaky test number {i}")
    first = svc.issues.search(None, "flaky", per_page=10)
    assert first.total == 25 and first.next_page == 2 and len(first.issues) == 10
    last = svc.issues.search(None, "flaky", page=3, per_page=10)
    assert last.next_page is None and len(last.issues) == 5
    detail = svc.issues.get(None, 1)
    assert detail.issue.title == "Flaky test number 0" and detail.notes == []


def test_create_issue_returns_duplicates_instead_of_creating(
    svc: GitlabService, fake: FakeGitlab, project: Project, tmp_path: Path
) -> None:
    fake.add_issue(project, "Login page crashes on empty password", "500 on POST /login")
    fake.add_issue(project, "Closed: login crash", state="closed")
    got = svc.issues.create(None, "Login page crash with an empty password", "HTTP 500")
    assert not got.created and got.issue is None
    assert [d.iid for d in got.duplicates] == [1] and got.duplicates[0].score >= 0.55
    assert mutations(fake) == []

    forced = svc.issues.create(
        None, "Login page crash with an empty password", if_duplicate="create"
    )
    assert forced.created and forced.issue and forced.issue.iid == 3 and forced.duplicates
    other = svc.issues.create(None, "Dark mode colours unreadable", affects=["web-frontend"])
    assert other.created and other.duplicates == [] and other.verified
    assert (
        other.memory
        and other.memory.remembered
        and other.memory.source == f"gitlab:{other.audit_id}"
    )
    facts = facts_of(tmp_path, fake, "Issue group/app#4")
    assert ("AFFECTS", "web-frontend", f"gitlab:{other.audit_id}") in facts
    assert ("PART_OF", "group/app", f"gitlab:{other.audit_id}") in facts


def test_comment_and_update_issue_are_read_back(
    svc: GitlabService, fake: FakeGitlab, project: Project
) -> None:
    iid = fake.add_issue(project, "Cache misses after deploy")
    note = svc.issues.comment(None, "issue", iid, "Seen again on v2.3", False)
    assert note.verified and note.note and note.note.body == "Seen again on v2.3"
    assert svc.issues.get(None, iid).notes[-1].body == "Seen again on v2.3"
    upd = svc.issues.update(None, iid, add_labels=["bug", "cache"], state="close", assignee="bob")
    assert upd.verified and upd.issue and upd.issue.state == "closed"
    assert upd.issue.labels == ["bug", "cache"] and upd.issue.assignees == ["bob"]
    again = svc.issues.update(None, iid, remove_labels=["cache"], state="reopen", assignee="")
    assert again.issue and again.issue.labels == ["bug"] and again.issue.assignees == []


# ---------------------------------------------------------------------------- commits
def test_commit_files_is_one_commit_on_top_of_what_was_read(
    svc: GitlabService, fake: FakeGitlab, project: Project, tmp_path: Path
) -> None:
    iid = fake.add_issue(project, "Guide is outdated")
    seen = svc.repo.get_file(None, "README.md")
    before = project.branches["main"]
    assert seen.commit_id == before and seen.content.startswith("# app")
    got = svc.repo.commit_files(
        None,
        "main",
        f"Publish the new guide\n\nFixes #{iid}",
        [
            CommitAction(action="update", file_path="README.md", content="# app v2\n"),
            CommitAction(action="create", file_path="posts/new.md", content="Hello\n"),
            CommitAction(action="move", file_path="docs/manual.md", previous_path="docs/guide.md"),
        ],
        last_commit_id=before,
    )
    assert got.verified and got.commit and got.commit.parent_ids == [before]
    head = project.branches["main"]
    assert head == got.commit.id and project.commits[head].parent_ids == [before]
    files = project.commits[head].files
    assert files["README.md"][0] == b"# app v2\n" and "posts/new.md" in files
    assert "docs/manual.md" in files and "docs/guide.md" not in files
    assert [m for m in mutations(fake) if m[1].endswith("/repository/commits")] == [
        ("POST", "/api/v4/projects/1/repository/commits")
    ]
    assert svc.repo.get_file(None, "README.md").content == "# app v2\n"
    facts = facts_of(tmp_path, fake, f"Commit {head[:8]}")
    assert ("FIXES", f"Issue group/app#{iid}", f"gitlab:{got.audit_id}") in facts
    assert ("PART_OF", "group/app", f"gitlab:{got.audit_id}") in facts


def test_commit_files_refuses_a_moved_branch_and_sends_nothing(
    svc: GitlabService, fake: FakeGitlab, project: Project
) -> None:
    seen = project.branches["main"]
    fake.push(project, "main", "someone else", {"src/app.py": "x = 2\n"})
    with pytest.raises(Conflict, match="moved since you read it"):
        svc.repo.commit_files(
            None,
            "main",
            "mine",
            [CommitAction(action="update", file_path="src/app.py", content="x = 3\n")],
            seen,
        )
    assert mutations(fake) == []
    assert project.commits[project.branches["main"]].files["src/app.py"][0] == b"x = 2\n"


def test_commit_files_race_is_refused_by_gitlab_as_a_whole(
    svc: GitlabService, fake: FakeGitlab, project: Project, tmp_path: Path
) -> None:
    seen = project.branches["main"]

    def writer(method: str, path: str) -> None:  # lands between our check and our commit
        if method == "HEAD" and fake.before is not None:
            fake.before = None
            fake.push(project, "main", "concurrent", {"README.md": "theirs\n"})

    fake.before = writer
    with pytest.raises(Conflict, match="changed since you started editing"):
        svc.repo.commit_files(
            None,
            "main",
            "mine",
            [
                CommitAction(action="create", file_path="new.txt", content="n\n"),
                CommitAction(action="update", file_path="README.md", content="mine\n"),
            ],
            seen,
        )
    files = project.commits[project.branches["main"]].files
    assert files["README.md"][0] == b"theirs\n" and "new.txt" not in files
    refused = [e for e in AuditLog(tmp_path / "audit.jsonl").entries() if e["result"] == "refused"]
    assert refused and refused[0]["action"] == "gitlab.commit_files"


def test_branch_compare_and_new_branch_commit(
    svc: GitlabService, fake: FakeGitlab, project: Project
) -> None:
    made = svc.repo.create_branch(None, "feature", "main")
    assert made.verified and made.commit_id == project.branches["main"]
    head = project.branches["feature"]
    svc.repo.commit_files(
        None,
        "feature",
        "Add a",
        [CommitAction(action="create", file_path="a.txt", content="a\n")],
        head,
    )
    svc.repo.commit_files(
        None,
        "topic",
        "Add b on a new branch",
        [CommitAction(action="create", file_path="b.txt", content="b\n")],
        project.branches["feature"],
        start_branch="feature",
    )
    cmp = svc.repo.compare(None, "main", "topic")
    assert cmp.commits_total == 2 and {f.path for f in cmp.files} == {"a.txt", "b.txt"}
    assert all(f.status == "added" and f.additions == 1 for f in cmp.files)


# ---------------------------------------------------------------------------- merge requests
def _feature(fake: FakeGitlab, project: Project, files: int = 2) -> None:
    fake.branch(project, "feature")
    fake.push(project, "feature", "Fix login crash\n\nCloses #1", {"src/login.py": "ok = 1\n"})
    fake.push(
        project,
        "feature",
        "Document the login flow (see #2)",
        {f"docs/page{i}.md": f"page {i}\n" for i in range(files)},
    )


def test_create_merge_request_with_summary(
    svc: GitlabService, fake: FakeGitlab, project: Project, tmp_path: Path
) -> None:
    fake.add_issue(project, "Login crashes")
    fake.add_issue(project, "Login flow undocumented")
    _feature(fake, project)
    dry = svc.mrs.create(
        None, "feature", prose="Fixes the crash.", implements=["login-v2"], dry_run=True
    )
    assert dry.request and dry.request["method"] == "POST" and dry.merge_request is None
    assert mutations(fake) == []
    got = svc.mrs.create(None, "feature", prose="Fixes the crash.", implements=["login-v2"])
    assert got.verified and got.merge_request and got.merge_request.iid == 1
    text = got.description
    assert text.startswith("Fixes the crash.") and "## What changed" in text
    assert "**docs**" in text and "**src**" in text and "Closes group/app#1" in text
    assert "Related to group/app#2" in text and got.stats.commits == 2 and got.stats.files == 3
    assert project.mrs[1]["description"] == text == dry.description
    facts = facts_of(tmp_path, fake, "MR group/app!1")
    assert ("IMPLEMENTS", "login-v2", f"gitlab:{got.audit_id}") in facts
    assert ("FIXES", "Issue group/app#1", f"gitlab:{got.audit_id}") in facts
    with pytest.raises(Conflict):
        svc.mrs.create(None, "main", target_branch="main")


def test_get_merge_request_pages_files_and_one_diff(
    svc: GitlabService, fake: FakeGitlab, project: Project
) -> None:
    _feature(fake, project, files=120)
    iid = fake.add_mr(project, "feature")
    first = svc.mrs.get(None, iid, per_page=50)
    assert first.total == 121 and first.next_page == 2 and len(first.files) == 50
    assert first.diff is None and first.merge_request.sha == project.branches["feature"]
    last = svc.mrs.get(None, iid, page=3, per_page=50, file="src/login.py")
    assert len(last.files) == 21 and last.next_page is None
    assert last.diff and "+ok = 1" in last.diff.diff
    with pytest.raises(NotFound):
        svc.mrs.get(None, iid, file="nope.txt")
    listed = svc.mrs.list_page(None)
    assert [m.iid for m in listed.merge_requests] == [iid]


def test_get_merge_request_reads_mr_and_files_together_and_reports_the_mrs_error_first(
    svc: GitlabService, fake: FakeGitlab, project: Project
) -> None:
    _feature(fake, project, files=3)
    iid = fake.add_mr(project, "feature")
    svc.base.project(None)  # the project is looked up once, before both reads
    both = threading.Barrier(2, timeout=5)
    met: list[str] = []

    def meet(method: str, path: str) -> None:
        try:
            both.wait()  # passes only if the other read is under way at the same time
            met.append(path)
        except threading.BrokenBarrierError:
            met.append(f"alone: {path}")

    fake.before = meet
    detail = svc.mrs.get(None, iid)
    fake.before = None
    assert detail.merge_request.iid == iid and len(detail.files) == 4
    mr = f"/api/v4/projects/{project.id}/merge_requests/{iid}"
    assert sorted(met) == [mr, f"{mr}/diffs"], met
    fake.fail("GET", rf"/merge_requests/{iid}/diffs$", 403)
    with pytest.raises(PolicyDenied, match=f"changes of !{iid}"):
        svc.mrs.get(None, iid)
    fake.fail("GET", r"/merge_requests/999/diffs$", 403)
    with pytest.raises(NotFound, match="read merge request !999"):  # both failed: the MR's
        svc.mrs.get(None, 999)


def test_merge_sha_guard(
    svc: GitlabService, fake: FakeGitlab, project: Project, tmp_path: Path
) -> None:
    _feature(fake, project)
    iid = fake.add_mr(project, "feature", description="Closes #1")
    seen = svc.mrs.get(None, iid).merge_request.sha
    assert seen
    fake.push(project, "feature", "late commit", {"late.txt": "x"})
    with pytest.raises(Conflict, match="moved"):
        svc.mrs.merge(None, iid, seen)
    assert mutations(fake) == []

    seen = project.branches["feature"]

    def writer(method: str, path: str) -> None:  # moves the branch after our check
        if method == "PUT":
            fake.before = None
            fake.push(project, "feature", "later still", {"later.txt": "y"})

    fake.before = writer
    with pytest.raises(Conflict, match="SHA does not match HEAD of source branch"):
        svc.mrs.merge(None, iid, seen)
    assert project.mrs[iid]["state"] == "opened"

    head = project.branches["feature"]
    assert svc.mrs.merge(None, iid, head, dry_run=True).request == {
        "method": "PUT",
        "url": f"{fake.url}/api/v4/projects/1/merge_requests/{iid}/merge",
        "query": {},
        "body": {"sha": head, "squash": False, "should_remove_source_branch": False},
    }
    done = svc.mrs.merge(None, iid, head)
    assert done.verified and done.merge_request and done.merge_request.state == "merged"
    merge_sha = project.branches["main"]
    assert done.merge_request.merge_commit_sha == merge_sha
    facts = facts_of(tmp_path, fake, f"MR group/app!{iid}")
    assert ("MERGED_AS", f"Commit {merge_sha[:8]}", f"gitlab:{done.audit_id}") in facts
    assert ("HAS_STATE", "merged", f"gitlab:{done.audit_id}") in facts
    assert ("FIXES", "Issue group/app#1", f"gitlab:{done.audit_id}") in facts_of(
        tmp_path, fake, f"Commit {merge_sha[:8]}"
    )
    with pytest.raises(Conflict, match="not open"):
        svc.mrs.merge(None, iid, head)


def test_unmergeable_and_draft_merge_requests_are_conflicts(
    svc: GitlabService, fake: FakeGitlab, project: Project
) -> None:
    _feature(fake, project)
    conflicted = fake.add_mr(project, "feature", has_conflicts=True)
    with pytest.raises(Conflict, match="422: Branch cannot be merged"):
        svc.mrs.merge(None, conflicted, project.branches["feature"])
    fake.branch(project, "wip")
    draft = fake.add_mr(project, "wip", draft=True)
    with pytest.raises(Conflict, match="405"):
        svc.mrs.merge(None, draft, project.branches["wip"])


# ---------------------------------------------------------------------------- modes, allowlist, dry runs
def _all_mutations(
    svc: GitlabService, project: Project, dry_run: bool
) -> dict[str, Callable[[], Any]]:
    head = project.branches["main"]
    return {
        "create_issue": lambda: svc.issues.create(None, "Unique title xyz", dry_run=dry_run),
        "comment_issue": lambda: svc.issues.comment(None, "issue", 1, "hi", dry_run),
        "update_issue": lambda: svc.issues.update(None, 1, add_labels=["x"], dry_run=dry_run),
        "create_merge_request": lambda: svc.mrs.create(None, "feature", dry_run=dry_run),
        "comment_merge_request": lambda: svc.issues.comment(None, "mr", 1, "hi", dry_run),
        "merge_merge_request": lambda: svc.mrs.merge(
            None, 1, project.branches["feature"], dry_run=dry_run
        ),
        "commit_files": lambda: svc.repo.commit_files(
            None,
            "main",
            "m",
            [CommitAction(action="update", file_path="README.md", content="n")],
            head,
            dry_run=dry_run,
        ),
        "commit_files delete": lambda: svc.repo.commit_files(
            None,
            "main",
            "m",
            [CommitAction(action="delete", file_path="README.md")],
            head,
            dry_run=dry_run,
        ),
        "create_branch": lambda: svc.repo.create_branch(None, "b2", "main", dry_run=dry_run),
        "retry_pipeline": lambda: svc.ci.retry(None, 7, dry_run=dry_run),
    }


@pytest.mark.parametrize("mode", ["read-only", "write", "full"])
def test_every_mode(make_service: Make, fake: FakeGitlab, project: Project, mode: str) -> None:
    fake.add_issue(project, "One")
    _feature(fake, project)
    fake.add_mr(project, "feature")
    project.pipelines[7] = fake.add_pipeline(project, "failed", [Job(71, "test", "test", "failed")])
    svc = make_service(mode=mode)
    needs_full = {"merge_merge_request", "commit_files delete"}
    for name, call in _all_mutations(svc, project, dry_run=True).items():
        allowed = mode == "full" or (mode == "write" and name not in needs_full)
        if allowed:
            assert call().dry_run, name
        else:
            with pytest.raises(PolicyDenied, match="PAI_GITLAB_MODE") as err:
                call()
            assert err.value.details["rule"] == "mode"
    assert mutations(fake) == []
    assert svc.issues.search(None).total == 1  # reading works in every mode


def test_dry_runs_send_nothing_and_show_the_request(
    make_service: Make, fake: FakeGitlab, project: Project
) -> None:
    fake.add_issue(project, "One")
    _feature(fake, project)
    fake.add_mr(project, "feature")
    project.pipelines[7] = fake.add_pipeline(project, "failed", [Job(71, "test", "test", "failed")])
    svc = make_service()
    for name, call in _all_mutations(svc, project, dry_run=True).items():
        result = call()
        assert result.dry_run and result.request, name
        assert result.request["url"].startswith(f"{fake.url}/api/v4/projects/1/"), name
        assert TOKEN not in str(result.model_dump()), name
    assert mutations(fake) == []
    commit = _all_mutations(svc, project, True)["commit_files"]().request
    assert commit and commit["body"]["actions"][0]["last_commit_id"] == project.branches["main"]


def test_project_allowlist(make_service: Make, fake: FakeGitlab, project: Project) -> None:
    other = fake.add_project("group/secret")
    svc = make_service(projects=["group/app"])
    assert svc.issues.search("group/app").project == "group/app"
    assert svc.issues.search("1").project == "group/app"  # numeric id, resolved then checked
    before = len(fake.requests)
    with pytest.raises(PolicyDenied, match="allowlist"):
        svc.issues.search("group/secret")
    assert len(fake.requests) == before  # refused without asking GitLab
    with pytest.raises(PolicyDenied, match="allowlist"):
        svc.issues.search(str(other.id))


# ---------------------------------------------------------------------------- errors and retries
def test_401_403_404_are_clear(make_service: Make, fake: FakeGitlab, project: Project) -> None:
    with pytest.raises(BackendUnavailable, match="401 Unauthorized") as bad:
        make_service(token="glpat-wrongwrongwrongwrong").issues.search(None)
    assert "PAI_GITLAB_TOKEN" in str(bad.value)
    guest = make_service(token=GUEST_TOKEN)
    with pytest.raises(PolicyDenied, match="group/app") as denied:
        guest.repo.create_branch(None, "x", "main")
    assert "Developer" in str(denied.value) and "nothing was changed" in str(denied.value)
    with pytest.raises(NotFound, match="group/none"):
        make_service().issues.search("group/none")
    with pytest.raises(NotFound, match="issue #99"):
        make_service().issues.get(None, 99)


def test_429_waits_retry_after_and_5xx_backs_off(
    svc: GitlabService, fake: FakeGitlab, project: Project, sleeps: list[float]
) -> None:
    fake.fail("GET", r"/issues$", 429, {"Retry-After": "3"})
    fake.fail("GET", r"/issues$", 502)
    assert svc.issues.search(None).total == 0
    assert sleeps[0] == 3.0 and len(sleeps) == 2 and sleeps[1] < 3

    sleeps.clear()
    fake.fail("POST", r"/issues/1/notes$", 429, {"Retry-After": "1"})
    iid = fake.add_issue(project, "Retry me")
    assert svc.issues.comment(None, "issue", iid, "after a 429", False).verified
    assert sleeps == [1.0]

    fake.fail("POST", r"/issues/1/notes$", 503)
    with pytest.raises(BackendUnavailable, match="may or may not have been applied"):
        svc.issues.comment(None, "issue", iid, "after a 503", False)
    fake.fail("GET", r"/issues$", 429, {"Retry-After": "3600"})
    with pytest.raises(BackendUnavailable, match="429"):
        svc.issues.search(None)
    fake.fail("GET", r"/issues$", 500, times=10)
    with pytest.raises(BackendUnavailable, match="500"):
        svc.issues.search(None)


# ---------------------------------------------------------------------------- CI
def test_job_log_masks_secrets_and_windows(
    svc: GitlabService, fake: FakeGitlab, project: Project
) -> None:
    trace = (
        "\x1b[0Ksection_start:1700000000:build\r\x1b[0K\x1b[32;1m$ make\x1b[0;m\n"
        f"using token {TOKEN}\n"
        "export AWS_ACCESS_KEY_ID=AKIAABCDEFGHIJKLMNOP\n"
        "DEPLOY_TOKEN=glpat-abcdefghijklmnopqrstu\n"
        "password: hunter2hunter2\n"
        "curl https://deploy:s3cretpass@example.invalid/x\n"
        "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAAB3Nza\n-----END OPENSSH PRIVATE KEY-----\n"
        + "".join(f"line {i}\n" for i in range(300))
    )
    pl = fake.add_pipeline(project, "failed", [Job(55, "build", "build", "failed", trace.encode())])
    head = svc.ci.job_log(None, 55, offset=0, length=4000)
    for secret in (
        TOKEN,
        "AKIAABCDEFGHIJKLMNOP",
        "glpat-abcdefghijklmnopqrstu",
        "hunter2hunter2",
        "s3cretpass",
        "AAAAB3Nza",
    ):
        assert secret not in head.text
    assert head.masked >= 6 and "\x1b" not in head.text and "section_start" not in head.text
    assert head.text.startswith("$ make\nusing token ***")
    tail = svc.ci.job_log(None, 55, tail_lines=3)
    assert tail.text == "line 297\nline 298\nline 299\n" and tail.end == tail.total_bytes
    window = svc.ci.job_log(None, 55, offset=tail.start, length=5)
    assert window.text == "line " and window.end == tail.start + 5
    detail = svc.ci.get(None, pl.id)
    assert detail.by_status == {"failed": 1} and detail.jobs[0].name == "build"


def test_retry_and_wait_pipeline_with_progress(
    svc: GitlabService, fake: FakeGitlab, project: Project
) -> None:
    pl = fake.add_pipeline(
        project, "failed", [Job(61, "test", "test", "failed"), Job(62, "lint", "test", "success")]
    )
    assert svc.ci.list_page(None).pipelines[0].status == "failed"
    retried = svc.ci.retry(None, pl.id)
    assert retried.verified and retried.pipeline and retried.pipeline.status == "running"
    seen: list[str] = []

    async def progress(done: float, total: float, message: str) -> None:
        seen.append(message)

    waited = asyncio.run(svc.ci.wait(None, pl.id, timeout_s=30, poll_s=0.01, progress=progress))
    assert waited.finished and waited.pipeline.status == "success" and waited.failed_jobs == []
    assert len(seen) == waited.polls >= 2 and "running" in seen[0] and "success" in seen[-1]

    stuck = fake.add_pipeline(project, "running", [Job(63, "slow", "test", "running")])
    timed = asyncio.run(svc.ci.wait(None, stuck.id, timeout_s=0.05, poll_s=0.01))
    assert not timed.finished and timed.pipeline.status == "running"


# ---------------------------------------------------------------------------- memory
def test_link_to_memory_and_remember_off(
    make_service: Make, fake: FakeGitlab, project: Project, tmp_path: Path
) -> None:
    iid = fake.add_issue(project, "Disk fills up")
    svc = make_service()
    sha = project.branches["main"]
    linked = svc.links.link(None, sha[:10], "FIXES", f"#{iid}")
    assert linked.memory and linked.memory.remembered and linked.object == f"Issue group/app#{iid}"
    assert ("FIXES", f"Issue group/app#{iid}", f"gitlab:{linked.audit_id}") in facts_of(
        tmp_path, fake, f"Commit {sha[:8]}"
    )
    assert svc.links.link(None, f"#{iid}", "AFFECTS", "backup-host", dry_run=True).request
    with pytest.raises(NotFound):
        svc.links.link(None, "#404", "AFFECTS", "x")
    with pytest.raises(PaiError, match="predicate"):
        svc.links.link(None, f"#{iid}", "HAS_STATE", "x")

    quiet = make_service(remember=False)
    got = quiet.issues.create(None, "Printer on fire", if_duplicate="create")
    assert got.created and got.memory and not got.memory.remembered
    assert "PAI_GITLAB_REMEMBER" in got.memory.detail


def test_token_never_in_results_errors_logs_audit_or_memory(
    make_service: Make,
    fake: FakeGitlab,
    project: Project,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    svc = make_service()
    texts: list[str] = []
    fake.fail("GET", r"/issues$", 502)
    texts.append(svc.issues.search(None).model_dump_json())
    texts.append(
        svc.issues.create(None, "Deploy job fails", "body", if_duplicate="create").model_dump_json()
    )
    for call in (
        lambda: make_service(token=GUEST_TOKEN).repo.create_branch(None, "x", "main"),
        lambda: svc.mrs.get(None, 42),
        lambda: make_service(url=fake.url + "/nope").issues.search(None),
    ):
        with pytest.raises(PaiError) as err:
            call()
        texts.append(str(err.value))
    texts.append((tmp_path / "audit.jsonl").read_text())
    texts.append("\n".join(caplog.messages))
    mem = open_memory(settings_for(fake, tmp_path).memory)
    texts.append(mem.graph.get_entity("Issue group/app#1").model_dump_json())
    for text in texts:
        assert TOKEN not in text and GUEST_TOKEN not in text


# ---------------------------------------------------------------------------- configuration
def test_token_file_ca_bundle_and_missing_settings(
    fake: FakeGitlab, project: Project, tmp_path: Path
) -> None:
    from pai_core.errors import ConfigError
    from pai_gitlab.server import build_service

    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    ca = tmp_path / "internal-ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    svc = build_service(
        settings_for(fake, tmp_path, token=None, token_file=token_file, ca_bundle=ca)
    )
    assert svc.base.client.gl.ssl_verify == str(ca)  # python-gitlab verifies TLS with it
    assert svc.issues.search(None).project == "group/app"  # the token from the file works
    with pytest.raises(ConfigError, match="PAI_GITLAB_URL"):
        build_service(settings_for(fake, tmp_path, url=None))
    with pytest.raises(ConfigError, match="PAI_GITLAB_TOKEN"):
        build_service(settings_for(fake, tmp_path, token=None))
    with pytest.raises(ConfigError, match="PAI_GITLAB_CA_BUNDLE"):
        build_service(settings_for(fake, tmp_path, ca_bundle=tmp_path / "missing.pem"))


def test_proxy_variables_still_apply_read_once(
    make_service: Make, project: Project, sleeps: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.conftest import free_port

    for name in ("NO_PROXY", "no_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")  # nothing listens
    with pytest.raises(BackendUnavailable, match="cannot reach GitLab"):
        make_service().issues.search(None)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    assert make_service().issues.search(None).total == 0
