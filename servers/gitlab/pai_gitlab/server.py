"""The GitLab MCP server: tool declarations only; logic lives in the services."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from pydantic import Field

from pai_core.annotations import tool_annotations
from pai_core.app import add_health_tool, create_server, tool
from pai_core.errors import ConfigError
from pai_core.log import register_secret
from pai_gitlab import __version__
from pai_gitlab.models import (
    BranchResult,
    CommitAction,
    CommitResult,
    CompareOut,
    CreateIssueResult,
    CreateMergeRequestResult,
    FileOut,
    IssueDetail,
    IssuesPage,
    JobLog,
    LinkResult,
    MergeRequestDetail,
    MergeRequestsPage,
    MergeResult,
    NoteResult,
    PipelineDetail,
    PipelinesPage,
    RetryResult,
    UpdateIssueResult,
    WaitResult,
)
from pai_gitlab.settings import GitlabSettings

if TYPE_CHECKING:  # python-gitlab loads with the first tool call, not at start-up
    from pai_gitlab.service import GitlabService

__all__ = ["build_server", "build_service"]

INSTRUCTIONS = """GitLab issues, merge requests, commits and pipelines; changes are linked into
the shared memory. Every mutating tool takes dry_run=true to show the exact request first.
create_issue looks for open duplicates first. commit_files makes ONE commit from several file
changes and needs the branch head you read (last_commit_id). merge_merge_request needs the
head sha you reviewed and refuses if the branch moved."""

READ = tool_annotations(read_only=True, open_world=True)
WRITE = tool_annotations(read_only=False, open_world=True)
DESTRUCTIVE = tool_annotations(read_only=False, destructive=True, open_world=True)

Project = Annotated[
    str | None, Field(description="Project path 'group/name' or numeric id (default if unset).")
]
Iid = Annotated[int, Field(ge=1, description="The issue or MR number in the project (#iid, !iid).")]
DryRun = Annotated[bool, Field(description="Send nothing; return the exact request.")]
PageArg = Annotated[int, Field(ge=1, description="Page number (1-based).")]
PerPage = Annotated[int, Field(ge=1, le=100, description="Items per page.")]
Labels = Annotated[list[str] | None, Field(description="Label names.")]


def _probe(settings: GitlabSettings) -> dict[str, Any]:
    problems = []
    if not settings.url:
        problems.append("PAI_GITLAB_URL is not set")
    if not (settings.token or settings.token_file):
        problems.append("no token: set PAI_GITLAB_TOKEN or PAI_GITLAB_TOKEN_FILE")
    if settings.ca_bundle and not settings.ca_bundle.exists():
        problems.append(f"PAI_GITLAB_CA_BUNDLE {settings.ca_bundle} does not exist")
    return {
        "backend": f"gitlab:{settings.url}" if settings.url else "gitlab (unset)",
        "configured": not problems,
        "problems": problems,
        "details": {"mode": settings.mode, "projects": settings.projects or "all"},
    }


def build_service(settings: GitlabSettings, **client_kwargs: Any) -> GitlabService:
    """The service for configured settings (ConfigError naming what is missing otherwise)."""
    from pai_core.audit import AuditLog
    from pai_core.memory.record import ChangeRecorder, PredicateSpec
    from pai_gitlab.base import Base
    from pai_gitlab.client import GitlabClient
    from pai_gitlab.links import PREDICATES
    from pai_gitlab.policy import Access
    from pai_gitlab.service import GitlabService

    problems = _probe(settings)["problems"]
    token = settings.secret()
    if not token and not problems:
        problems.append("the token file is empty")
    if problems:
        raise ConfigError("the GitLab server is not configured: " + "; ".join(problems))
    assert settings.url and token and settings.audit_log is not None
    register_secret(token)
    client = GitlabClient(
        settings.url,
        token,
        ca_bundle=str(settings.ca_bundle) if settings.ca_bundle else None,
        timeout_s=settings.timeout_s,
        max_retries=settings.max_retries,
        max_retry_wait_s=settings.max_retry_wait_s,
        **client_kwargs,
    )
    recorder = ChangeRecorder.from_settings(
        settings, predicates=[PredicateSpec(*p) for p in PREDICATES]
    )
    base = Base(
        client,
        Access(settings.mode, tuple(settings.projects)),
        AuditLog(settings.audit_log),
        recorder,
        default_project=settings.default_project,
    )
    return GitlabService.over(
        base,
        secrets=[token],
        duplicate_threshold=settings.duplicate_threshold,
        min_poll_s=settings.min_poll_s,
    )


def build_server(settings: GitlabSettings) -> MCPServer[Any]:
    """Compose the server from its settings (the composition root calls this)."""
    server = create_server(
        "gitlab", version=__version__, instructions=INSTRUCTIONS, settings=settings
    )
    add_health_tool(server, version=__version__, settings=settings, probe=lambda: _probe(settings))
    cache: dict[str, GitlabService] = {}

    def svc() -> GitlabService:
        # Built on first use, so an unconfigured server still starts and reports health.
        if "s" not in cache:
            cache["s"] = build_service(settings)
        return cache["s"]

    # ------------------------------------------------------------------ issues
    @tool(server, READ)
    def search_issues(
        project: Project = None,
        query: Annotated[str | None, Field(description="Words in title or body.")] = None,
        state: Literal["opened", "closed", "all"] = "opened",
        labels: Labels = None,
        page: PageArg = 1,
        per_page: PerPage = 20,
    ) -> IssuesPage:
        """Search a project's issues (newest activity first, paginated)."""
        return svc().issues.search(project, query, state, labels, page, per_page)

    @tool(server, READ)
    def get_issue(
        iid: Iid,
        project: Project = None,
        notes: Annotated[int, Field(ge=0, le=100, description="Latest comments to include.")] = 10,
    ) -> IssueDetail:
        """Read one issue with its description and latest comments."""
        return svc().issues.get(project, iid, notes)

    @tool(server, WRITE)
    def create_issue(
        title: Annotated[str, Field(min_length=1, max_length=255, description="Issue title.")],
        description: Annotated[str, Field(description="Body (Markdown): steps, evidence.")] = "",
        project: Project = None,
        labels: Labels = None,
        affects: Annotated[
            list[str] | None, Field(description="Services or hosts it affects (for memory).")
        ] = None,
        if_duplicate: Annotated[
            Literal["skip", "create"],
            Field(description="skip: return likely duplicates instead of creating."),
        ] = "skip",
        dry_run: DryRun = False,
    ) -> CreateIssueResult:
        """File an issue for a discovered bug, after looking for likely duplicates among open
        issues. With duplicates and if_duplicate='skip' nothing is created and they are
        returned: comment on one of them instead, or call again with if_duplicate='create'."""
        return svc().issues.create(
            project, title, description, labels, affects, if_duplicate, dry_run
        )

    @tool(server, WRITE)
    def comment_issue(
        iid: Iid,
        body: Annotated[str, Field(min_length=1, description="Comment (Markdown).")],
        project: Project = None,
        dry_run: DryRun = False,
    ) -> NoteResult:
        """Add a comment to an issue."""
        return svc().issues.comment(project, "issue", iid, body, dry_run)

    @tool(server, tool_annotations(read_only=False, idempotent=True, open_world=True))
    def update_issue(
        iid: Iid,
        project: Project = None,
        title: str | None = None,
        description: str | None = None,
        add_labels: Labels = None,
        remove_labels: Labels = None,
        state: Annotated[
            Literal["close", "reopen"] | None, Field(description="Close/reopen.")
        ] = None,
        assignee: Annotated[
            str | None, Field(description="Username to assign; '' to unassign.")
        ] = None,
        dry_run: DryRun = False,
    ) -> UpdateIssueResult:
        """Change an issue's title, description, labels, state or assignee."""
        return svc().issues.update(
            project,
            iid,
            title=title,
            description=description,
            add_labels=add_labels,
            remove_labels=remove_labels,
            state=state,
            assignee=assignee,
            dry_run=dry_run,
        )

    # ------------------------------------------------------------------ merge requests
    @tool(server, READ)
    def list_merge_requests(
        project: Project = None,
        state: Literal["opened", "closed", "merged", "all"] = "opened",
        source_branch: str | None = None,
        target_branch: str | None = None,
        search: str | None = None,
        page: PageArg = 1,
        per_page: PerPage = 20,
    ) -> MergeRequestsPage:
        """List a project's merge requests (paginated)."""
        return svc().mrs.list_page(
            project, state, source_branch, target_branch, search, page, per_page
        )

    @tool(server, READ)
    def get_merge_request(
        iid: Iid,
        project: Project = None,
        page: PageArg = 1,
        per_page: Annotated[int, Field(ge=1, le=100, description="Changed files per page.")] = 50,
        file: Annotated[str | None, Field(description="Also return this file's diff.")] = None,
    ) -> MergeRequestDetail:
        """Read a merge request: state, head sha, merge status, and one page of changed files
        with line counts; pass `file` for that file's diff."""
        return svc().mrs.get(project, iid, page, per_page, file)

    @tool(server, WRITE)
    def create_merge_request(
        source_branch: str,
        project: Project = None,
        target_branch: Annotated[str | None, Field(description="Default: default branch.")] = None,
        title: str | None = None,
        description: Annotated[
            str | None, Field(description="Your prose; the summary is added below it.")
        ] = None,
        labels: Labels = None,
        implements: Annotated[
            list[str] | None, Field(description="Entities it implements (for memory).")
        ] = None,
        remove_source_branch: bool = False,
        dry_run: DryRun = False,
    ) -> CreateMergeRequestResult:
        """Open a merge request whose description summarises the change: what changed grouped
        by area with line counts, the commits, and the linked issues."""
        return svc().mrs.create(
            project,
            source_branch,
            target_branch,
            title,
            description,
            labels,
            implements,
            remove_source_branch,
            dry_run,
        )

    @tool(server, WRITE)
    def comment_merge_request(
        iid: Iid,
        body: Annotated[str, Field(min_length=1, description="Comment (Markdown).")],
        project: Project = None,
        dry_run: DryRun = False,
    ) -> NoteResult:
        """Add a comment to a merge request."""
        return svc().issues.comment(project, "mr", iid, body, dry_run)

    @tool(server, DESTRUCTIVE)
    def merge_merge_request(
        iid: Iid,
        sha: Annotated[str, Field(min_length=7, description="The head sha you reviewed.")],
        project: Project = None,
        squash: bool = False,
        remove_source_branch: bool = False,
        merge_commit_message: str | None = None,
        dry_run: DryRun = False,
    ) -> MergeResult:
        """Merge a merge request (mode 'full' only). Refused, with nothing merged, if its source
        branch moved past `sha`, or it is not open or cannot be merged."""
        return svc().mrs.merge(
            project, iid, sha, squash, remove_source_branch, merge_commit_message, dry_run
        )

    # ------------------------------------------------------------------ repository
    @tool(server, READ)
    def get_file(
        path: Annotated[str, Field(description="File path in the repository.")],
        project: Project = None,
        ref: Annotated[str | None, Field(description="Branch, tag or sha.")] = None,
        max_bytes: Annotated[int, Field(ge=1, le=1_000_000)] = 100_000,
    ) -> FileOut:
        """Read a file; `commit_id` is the head of `ref`, the guard commit_files needs."""
        return svc().repo.get_file(project, path, ref, max_bytes)

    @tool(server, DESTRUCTIVE)
    def commit_files(
        branch: str,
        message: Annotated[str, Field(min_length=1, description="Commit message.")],
        actions: Annotated[list[CommitAction], Field(min_length=1, description="File changes.")],
        last_commit_id: Annotated[
            str, Field(min_length=7, description="Head of the branch when you read it.")
        ],
        project: Project = None,
        start_branch: Annotated[
            str | None, Field(description="Create `branch` from this one if it is missing.")
        ] = None,
        author_name: str | None = None,
        author_email: str | None = None,
        dry_run: DryRun = False,
    ) -> CommitResult:
        """Commit several creates/updates/moves/deletes as ONE commit, or none. Refused if the
        branch moved past last_commit_id or a touched file changed. Deletes need mode 'full'."""
        return svc().repo.commit_files(
            project,
            branch,
            message,
            actions,
            last_commit_id,
            start_branch,
            author_name,
            author_email,
            dry_run,
        )

    @tool(server, WRITE)
    def create_branch(
        branch: str,
        ref: Annotated[str, Field(description="Branch, tag or sha to start from.")],
        project: Project = None,
        dry_run: DryRun = False,
    ) -> BranchResult:
        """Create a branch from a ref."""
        return svc().repo.create_branch(project, branch, ref, dry_run)

    @tool(server, READ)
    def compare(
        base: Annotated[str, Field(description="Base branch, tag or sha.")],
        head: Annotated[str, Field(description="Head branch, tag or sha.")],
        project: Project = None,
        page: PageArg = 1,
        per_page: PerPage = 50,
        straight: Annotated[bool, Field(description="base..head instead of base...head.")] = False,
    ) -> CompareOut:
        """Commits and changed files (with line counts) between two refs."""
        return svc().repo.compare(project, base, head, page, per_page, straight)

    # ------------------------------------------------------------------ CI
    @tool(server, READ)
    def list_pipelines(
        project: Project = None,
        ref: str | None = None,
        status: str | None = None,
        page: PageArg = 1,
        per_page: PerPage = 20,
    ) -> PipelinesPage:
        """List a project's pipelines, newest first."""
        return svc().ci.list_page(project, ref, status, page, per_page)

    @tool(server, READ)
    def get_pipeline(pipeline_id: int, project: Project = None) -> PipelineDetail:
        """A pipeline's status and its jobs."""
        return svc().ci.get(project, pipeline_id)

    @tool(server, READ)
    def get_job_log(
        job_id: int,
        project: Project = None,
        tail_lines: Annotated[int | None, Field(ge=1, le=5000)] = None,
        offset: Annotated[int | None, Field(ge=0, description="Byte offset of a window.")] = None,
        length: Annotated[int | None, Field(ge=1, le=65536, description="Window bytes.")] = None,
    ) -> JobLog:
        """A job's log with secrets masked: the last lines (default 200) or a byte window."""
        return svc().ci.job_log(project, job_id, tail_lines, offset, length)

    @tool(server, WRITE)
    def retry_pipeline(
        pipeline_id: int, project: Project = None, dry_run: DryRun = False
    ) -> RetryResult:
        """Retry a pipeline's failed jobs."""
        return svc().ci.retry(project, pipeline_id, dry_run)

    @tool(server, READ)
    async def wait_pipeline(
        pipeline_id: int,
        ctx: Context,
        project: Project = None,
        timeout_s: Annotated[float, Field(gt=0, le=3600)] = 600,
        poll_s: Annotated[float, Field(gt=0, le=60)] = 5,
    ) -> WaitResult:
        """Wait until a pipeline finishes, reporting progress; returns its failed jobs."""

        async def progress(done: float, total: float, message: str) -> None:
            await ctx.report_progress(done, total, message)

        return await svc().ci.wait(project, pipeline_id, timeout_s, poll_s, progress)

    # ------------------------------------------------------------------ memory
    @tool(server, tool_annotations(read_only=False, idempotent=True))
    def link_to_memory(
        subject: Annotated[str, Field(description="'#42' (issue), '!7' (MR) or a commit sha.")],
        predicate: Literal["FIXES", "IMPLEMENTS", "AFFECTS", "RELATES_TO"],
        object: Annotated[str, Field(description="An entity name, or '#n' / '!n'.")],
        project: Project = None,
        dry_run: DryRun = False,
    ) -> LinkResult:
        """Record a relation of a GitLab object in the shared memory (checked to exist)."""
        return svc().links.link(project, subject, predicate, object, dry_run)

    return server
