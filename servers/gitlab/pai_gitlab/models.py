"""Inputs and structured results of the GitLab tools (their input and output schemas)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from pai_core.memory.record import MemoryNote

__all__ = [
    "BranchResult",
    "ChangedFile",
    "CommitAction",
    "CommitOut",
    "CommitResult",
    "CompareOut",
    "CreateIssueResult",
    "CreateMergeRequestResult",
    "DuplicateCandidate",
    "FileDiff",
    "FileOut",
    "IssueDetail",
    "IssueOut",
    "IssuesPage",
    "JobLog",
    "JobOut",
    "LinkResult",
    "MemoryNote",
    "MergeRequestDetail",
    "MergeRequestOut",
    "MergeRequestsPage",
    "MergeResult",
    "Mutation",
    "NoteOut",
    "NoteResult",
    "PipelineDetail",
    "PipelineOut",
    "PipelinesPage",
    "RetryResult",
    "SummaryStats",
    "UpdateIssueResult",
    "WaitResult",
]


class Mutation(BaseModel):
    """What every mutating tool reports besides its object."""

    dry_run: bool = Field(description="True: nothing was sent; `request` is what would be.")
    request: dict[str, Any] | None = Field(
        None, description="The exact request (method, url, query, body) for a dry run."
    )
    verified: bool = Field(False, description="The change was read back from GitLab and matches.")
    verification: str = Field("", description="What was read back to verify the change.")
    audit_id: int | None = Field(None, description="Sequence number in the shared audit log.")
    memory: MemoryNote | None = Field(
        None, description="Whether the change was recorded in the shared memory, and how."
    )


class Paged(BaseModel):
    page: int
    per_page: int
    total: int | None = Field(description="Items in all pages (GitLab's x-total), if known.")
    next_page: int | None = Field(description="Pass as `page` for more; null on the last page.")


# ---------------------------------------------------------------------------- issues
class IssueOut(BaseModel):
    iid: int = Field(description="The project-scoped number (#iid).")
    title: str
    state: str
    labels: list[str]
    assignees: list[str] = Field(description="Usernames.")
    author: str | None
    web_url: str
    created_at: str | None
    updated_at: str | None


class IssuesPage(Paged):
    project: str
    issues: list[IssueOut]


class NoteOut(BaseModel):
    id: int
    author: str | None
    body: str
    created_at: str | None
    system: bool = False


class IssueDetail(BaseModel):
    project: str
    issue: IssueOut
    description: str
    description_truncated: bool
    notes: list[NoteOut] = Field(description="The latest comments, oldest first.")
    notes_total: int | None


class DuplicateCandidate(BaseModel):
    iid: int
    title: str
    score: float = Field(description="Similarity 0..1 of title and body words.")
    web_url: str


class CreateIssueResult(Mutation):
    created: bool = Field(description="False when duplicates stopped it, or on a dry run.")
    issue: IssueOut | None
    duplicates: list[DuplicateCandidate] = Field(
        description="Open issues that look like the same bug, most similar first."
    )


class NoteResult(Mutation):
    note: NoteOut | None
    target: str = Field(description="What was commented, e.g. 'group/app#42'.")


class UpdateIssueResult(Mutation):
    issue: IssueOut | None


# ---------------------------------------------------------------------------- merge requests
class MergeRequestOut(BaseModel):
    iid: int = Field(description="The project-scoped number (!iid).")
    title: str
    state: str
    draft: bool
    source_branch: str
    target_branch: str
    sha: str | None = Field(description="Head SHA of the source branch: pass it to merge.")
    merge_status: str | None = Field(description="GitLab's detailed_merge_status.")
    has_conflicts: bool
    labels: list[str]
    author: str | None
    web_url: str
    merge_commit_sha: str | None = None


class MergeRequestsPage(Paged):
    project: str
    merge_requests: list[MergeRequestOut]


class ChangedFile(BaseModel):
    path: str
    old_path: str | None = Field(None, description="Set when renamed.")
    status: Literal["added", "modified", "deleted", "renamed"]
    additions: int
    deletions: int


class FileDiff(BaseModel):
    path: str
    diff: str
    truncated: bool


class MergeRequestDetail(Paged):
    project: str
    merge_request: MergeRequestOut
    description: str
    description_truncated: bool
    files: list[ChangedFile] = Field(description="This page of changed files with line counts.")
    diff: FileDiff | None = Field(None, description="The diff of the file asked for, if any.")


class SummaryStats(BaseModel):
    commits: int
    files: int
    additions: int
    deletions: int
    areas: list[str]
    linked_issues: list[str]


class CreateMergeRequestResult(Mutation):
    merge_request: MergeRequestOut | None
    title: str
    description: str = Field(description="The description sent: your prose plus the summary.")
    stats: SummaryStats


class MergeResult(Mutation):
    merge_request: MergeRequestOut | None


# ---------------------------------------------------------------------------- repository
class FileOut(BaseModel):
    project: str
    path: str
    ref: str
    size: int
    encoding: Literal["text", "base64"] = Field(description="base64 when the file is binary.")
    content: str
    truncated: bool
    blob_id: str | None
    commit_id: str | None = Field(description="Head of `ref` when read: commit_files' guard.")
    last_commit_id: str | None = Field(description="Last commit that changed this file.")


class CommitAction(BaseModel):
    """One change inside a multi-file commit."""

    action: Literal["create", "update", "delete", "move", "chmod"]
    file_path: str = Field(description="Path in the repository.")
    previous_path: str | None = Field(None, description="Old path, for move.")
    content: str | None = Field(None, description="New content, for create/update (and move).")
    encoding: Literal["text", "base64"] = "text"
    execute_filemode: bool | None = Field(None, description="For chmod.")


class CommitOut(BaseModel):
    id: str
    short_id: str
    title: str
    parent_ids: list[str]
    author: str | None
    web_url: str | None
    created_at: str | None = None


class CommitResult(Mutation):
    project: str
    branch: str
    commit: CommitOut | None
    files: list[str] = Field(description="Paths the commit touches.")


class BranchResult(Mutation):
    project: str
    branch: str
    commit_id: str | None


class CompareOut(Paged):
    project: str
    base: str
    head: str
    commits: list[CommitOut]
    commits_total: int
    files: list[ChangedFile]
    same_ref: bool


# ---------------------------------------------------------------------------- CI
class PipelineOut(BaseModel):
    id: int
    status: str
    ref: str | None
    sha: str | None
    source: str | None
    web_url: str | None
    created_at: str | None
    updated_at: str | None
    duration: float | None = None


class PipelinesPage(Paged):
    project: str
    pipelines: list[PipelineOut]


class JobOut(BaseModel):
    id: int
    name: str
    stage: str
    status: str
    duration: float | None
    failure_reason: str | None
    web_url: str | None


class PipelineDetail(BaseModel):
    project: str
    pipeline: PipelineOut
    jobs: list[JobOut]
    by_status: dict[str, int]


class JobLog(BaseModel):
    project: str
    job_id: int
    total_bytes: int
    start: int = Field(description="Byte offset of the first byte returned.")
    end: int = Field(description="Byte offset after the last byte returned.")
    text: str
    masked: int = Field(description="How many secrets were replaced by ***.")


class RetryResult(Mutation):
    pipeline: PipelineOut | None


class WaitResult(BaseModel):
    project: str
    pipeline: PipelineOut
    finished: bool = Field(description="False when the wait timed out first.")
    waited_s: float
    polls: int
    failed_jobs: list[JobOut]


# ---------------------------------------------------------------------------- memory
class LinkResult(Mutation):
    subject: str
    predicate: str
    object: str
