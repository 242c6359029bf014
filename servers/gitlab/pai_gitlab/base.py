"""What every part of the service shares: projects, the mutation pipeline, memory facts.

A mutation runs as: mode and allowlist checks → the exact :class:`~pai_gitlab.client.Request`
(returned as is on ``dry_run``) → send → read back and compare (verification) → one audit
entry → memory facts recorded with the audit entry's ``seq`` as their source id. A refusal by
GitLab is audited too (result ``refused``) and raised with what to do next.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from pai_core.audit import AuditLog
from pai_core.errors import PaiError
from pai_gitlab.client import GitlabClient, Op, Request, enc
from pai_gitlab.models import (
    CommitOut,
    IssueOut,
    JobOut,
    MemoryNote,
    MergeRequestOut,
    NoteOut,
    PipelineOut,
)
from pai_gitlab.policy import Access

if TYPE_CHECKING:
    from pai_core.memory.record import ChangeFact

__all__ = [
    "READ",
    "Base",
    "Project",
    "Recorder",
    "commit_name",
    "commit_out",
    "fact",
    "issue_name",
    "issue_ref_name",
    "issue_out",
    "job_out",
    "mr_name",
    "mr_out",
    "note_out",
    "pipeline_out",
]

log = logging.getLogger(__name__)
T = TypeVar("T")
READ = "read access (read_api scope and at least the Guest role; Reporter for CI logs)"
_AUDIT_STR_MAX = 300


class Recorder(Protocol):
    def record(
        self, *, audit_id: int, facts: Sequence[ChangeFact], at: float | None = None
    ) -> MemoryNote: ...


@dataclass(frozen=True, slots=True)
class Project:
    id: int
    path: str
    default_branch: str | None
    web_url: str | None


def issue_name(project: str, iid: int) -> str:
    return f"Issue {project}#{iid}"


def mr_name(project: str, iid: int) -> str:
    return f"MR {project}!{iid}"


def commit_name(sha: str) -> str:
    return f"Commit {sha[:8]}"


def issue_ref_name(ref: str) -> str:
    """``group/app#12`` → ``Issue group/app#12``."""
    project, _, iid = ref.rpartition("#")
    return issue_name(project, int(iid))


def fact(
    subject: str,
    predicate: str,
    *,
    object: str | None = None,
    value: str | None = None,
    subject_type: str | None = None,
    object_type: str | None = None,
    ended: bool = False,
) -> ChangeFact:
    from pai_core.memory.record import ChangeFact

    kwargs: dict[str, Any] = {"object": object, "value": value, "ended": ended}
    if subject_type:
        kwargs["subject_type"] = subject_type
    if object_type:
        kwargs["object_type"] = object_type
    return ChangeFact(subject, predicate, **kwargs)


def _user(d: Any) -> str | None:
    return str(d.get("username")) if isinstance(d, dict) and d.get("username") else None


def issue_out(d: dict[str, Any]) -> IssueOut:
    return IssueOut(
        iid=int(d["iid"]),
        title=str(d.get("title") or ""),
        state=str(d.get("state") or ""),
        labels=list(d.get("labels") or []),
        assignees=[u for u in (_user(a) for a in d.get("assignees") or []) if u],
        author=_user(d.get("author")),
        web_url=str(d.get("web_url") or ""),
        created_at=d.get("created_at"),
        updated_at=d.get("updated_at"),
    )


def mr_out(d: dict[str, Any]) -> MergeRequestOut:
    return MergeRequestOut(
        iid=int(d["iid"]),
        title=str(d.get("title") or ""),
        state=str(d.get("state") or ""),
        draft=bool(d.get("draft") or d.get("work_in_progress")),
        source_branch=str(d.get("source_branch") or ""),
        target_branch=str(d.get("target_branch") or ""),
        sha=d.get("sha"),
        merge_status=d.get("detailed_merge_status") or d.get("merge_status"),
        has_conflicts=bool(d.get("has_conflicts")),
        labels=list(d.get("labels") or []),
        author=_user(d.get("author")),
        web_url=str(d.get("web_url") or ""),
        merge_commit_sha=d.get("merge_commit_sha") or d.get("squash_commit_sha"),
    )


def note_out(d: dict[str, Any]) -> NoteOut:
    return NoteOut(
        id=int(d["id"]),
        author=_user(d.get("author")),
        body=str(d.get("body") or ""),
        created_at=d.get("created_at"),
        system=bool(d.get("system")),
    )


def commit_out(d: dict[str, Any]) -> CommitOut:
    return CommitOut(
        id=str(d["id"]),
        short_id=str(d.get("short_id") or str(d["id"])[:8]),
        title=str(d.get("title") or str(d.get("message") or "").split("\n", 1)[0]),
        parent_ids=list(d.get("parent_ids") or []),
        author=d.get("author_name"),
        web_url=d.get("web_url"),
        created_at=d.get("created_at"),
    )


def pipeline_out(d: dict[str, Any]) -> PipelineOut:
    return PipelineOut(
        id=int(d["id"]),
        status=str(d.get("status") or ""),
        ref=d.get("ref"),
        sha=d.get("sha"),
        source=d.get("source"),
        web_url=d.get("web_url"),
        created_at=d.get("created_at"),
        updated_at=d.get("updated_at"),
        duration=d.get("duration"),
    )


def job_out(d: dict[str, Any]) -> JobOut:
    return JobOut(
        id=int(d["id"]),
        name=str(d.get("name") or ""),
        stage=str(d.get("stage") or ""),
        status=str(d.get("status") or ""),
        duration=d.get("duration"),
        failure_reason=d.get("failure_reason"),
        web_url=d.get("web_url"),
    )


def _audit_value(value: Any) -> Any:
    """Long strings (file contents, long bodies) are kept in the audit log as a hash."""
    if isinstance(value, str) and len(value) > _AUDIT_STR_MAX:
        digest = hashlib.sha256(value.encode()).hexdigest()[:16]
        return f"<{len(value)} chars, sha256 {digest}…>"
    if isinstance(value, dict):
        return {k: _audit_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_audit_value(v) for v in value]
    return value


class Base:
    """Projects, the mutation pipeline and memory, shared by every part of the service."""

    def __init__(
        self,
        client: GitlabClient,
        access: Access,
        audit: AuditLog,
        recorder: Recorder | None,
        *,
        default_project: str | None = None,
    ) -> None:
        self.client = client
        self.access = access
        self.audit = audit
        self.recorder = recorder
        self.default_project = default_project
        self._projects: dict[str, Project] = {}
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    # ------------------------------------------------------------------ projects
    def project(self, project: str | None) -> Project:
        """Resolve a project path or id (or the default) after checking the allowlist."""
        from pai_core.errors import InvalidInput

        name = (project or self.default_project or "").strip().strip("/")
        if not name:
            raise InvalidInput(
                "no project given and no default project is set",
                field="project",
                hint="Pass project='group/name' (or set PAI_GITLAB_DEFAULT_PROJECT).",
            )
        verdict = self.access.literal_ok(name)
        if verdict is False:
            self.access.deny(name)
        key = name.lower()
        with self._lock:
            cached = self._projects.get(key)
        if cached is None:
            d = self.client.get(f"/projects/{enc(name)}", Op("read the project", name, READ))
            cached = Project(
                id=int(d["id"]),
                path=str(d.get("path_with_namespace") or name),
                default_branch=d.get("default_branch"),
                web_url=d.get("web_url"),
            )
            with self._lock:
                self._projects[key] = cached
        self.access.check(cached.id, cached.path)
        return cached

    def alongside(self, fn: Callable[[], T]) -> Future[T]:
        """Start ``fn`` (a read that does not depend on the caller's next one) on another
        thread, so the two wait for GitLab together instead of one after the other."""
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="pai-gitlab")
            pool = self._pool
        return pool.submit(fn)

    @staticmethod
    def op(what: str, project: Project, permission: str = READ) -> Op:
        return Op(what, project.path, permission, mutation=permission != READ)

    def read(self, path: str, what: str, project: Project, **query: Any) -> Any:
        return self.client.get(f"/projects/{project.id}{path}", self.op(what, project), **query)

    # ------------------------------------------------------------------ mutations
    def describe(self, req: Request) -> dict[str, Any]:
        return req.describe(self.client.url)

    def apply(self, name: str, project: Project, req: Request, op: Op) -> Any:
        """Send a mutation; a refusal is audited (``refused``) and raised."""
        try:
            return self.client.send(req, op)
        except PaiError as exc:
            self.audit.append(
                f"gitlab.{name}",
                project=project.path,
                request=_audit_value(self.describe(req)),
                result="refused",
                error=str(exc),
            )
            raise

    def finish(
        self,
        name: str,
        project: Project,
        req: Request,
        *,
        verified: bool,
        verification: str,
        facts: list[ChangeFact] | None = None,
        **fields: Any,
    ) -> tuple[int, MemoryNote | None]:
        """Audit the applied change, then record its facts (only once it is verified)."""
        entry = self.audit.append(
            f"gitlab.{name}",
            project=project.path,
            request=_audit_value(self.describe(req)),
            result="applied" if verified else "applied-unverified",
            verification=verification,
            **fields,
        )
        seq = int(entry["seq"])
        if facts and not verified:
            note = "not recorded: the change could not be verified (see verification)"
            return seq, MemoryNote(remembered=False, facts=0, source=None, detail=note)
        return seq, self.remember(seq, facts or [])

    def remember(self, audit_id: int, facts: list[ChangeFact]) -> MemoryNote | None:
        """Record verified facts under the audit entry ``audit_id`` (never raises)."""
        if not facts or self.recorder is None:
            return None
        return self.recorder.record(audit_id=audit_id, facts=facts)
