"""Issues: search, read, create (after a duplicate check), comment, update."""

from __future__ import annotations

from typing import Any, Literal

from pai_core.errors import InvalidInput, NotFound
from pai_gitlab.base import Base, Project, fact, issue_name, issue_out, mr_name, note_out
from pai_gitlab.client import Op, Request
from pai_gitlab.models import (
    CreateIssueResult,
    DuplicateCandidate,
    IssueDetail,
    IssuesPage,
    NoteResult,
    UpdateIssueResult,
)
from pai_gitlab.text import keywords, similarity

__all__ = ["IssueService"]

REPORTER = "the api scope and at least the Reporter role (Guest may only open issues)"
GUEST_WRITE = "the api scope and at least the Guest role"
_DESCRIPTION_MAX = 8000


class IssueService:
    def __init__(self, base: Base, *, duplicate_threshold: float = 0.55) -> None:
        self.base = base
        self.duplicate_threshold = duplicate_threshold

    # ------------------------------------------------------------------ reading
    def search(
        self,
        project: str | None,
        query: str | None = None,
        state: Literal["opened", "closed", "all"] = "opened",
        labels: list[str] | None = None,
        page: int = 1,
        per_page: int = 20,
    ) -> IssuesPage:
        p = self.base.project(project)
        q: dict[str, Any] = {"order_by": "updated_at", "sort": "desc"}
        if state != "all":
            q["state"] = state
        if query:
            q["search"] = query
        if labels:
            q["labels"] = ",".join(labels)
        got = self.base.client.page(
            f"/projects/{p.id}/issues",
            self.base.op("search issues", p),
            page=page,
            per_page=per_page,
            **q,
        )
        return IssuesPage(
            project=p.path,
            issues=[issue_out(d) for d in got.items],
            page=got.page,
            per_page=got.per_page,
            total=got.total,
            next_page=got.next_page,
        )

    def get(self, project: str | None, iid: int, notes: int = 10) -> IssueDetail:
        p = self.base.project(project)
        d = self.base.read(f"/issues/{iid}", f"read issue #{iid}", p)
        note_page = None
        if notes:
            note_page = self.base.client.page(
                f"/projects/{p.id}/issues/{iid}/notes",
                self.base.op(f"read the comments of issue #{iid}", p),
                per_page=notes,
                sort="desc",
                order_by="created_at",
            )
        description = str(d.get("description") or "")
        return IssueDetail(
            project=p.path,
            issue=issue_out(d),
            description=description[:_DESCRIPTION_MAX],
            description_truncated=len(description) > _DESCRIPTION_MAX,
            notes=[note_out(n) for n in reversed(note_page.items)] if note_page else [],
            notes_total=note_page.total if note_page else None,
        )

    def duplicates(
        self, p: Project, title: str, description: str, limit: int = 5
    ) -> list[DuplicateCandidate]:
        """Open issues that look like the same report, most similar first."""
        seen: dict[int, dict[str, Any]] = {}
        for word in keywords(title) or [title]:
            got = self.base.client.page(
                f"/projects/{p.id}/issues",
                self.base.op("look for duplicate issues", p),
                per_page=50,
                state="opened",
                search=word,
            )
            for d in got.items:
                seen.setdefault(int(d["iid"]), d)
        scored = [
            DuplicateCandidate(
                iid=iid,
                title=str(d.get("title") or ""),
                score=similarity(
                    title, description, str(d.get("title") or ""), str(d.get("description") or "")
                ),
                web_url=str(d.get("web_url") or ""),
            )
            for iid, d in seen.items()
        ]
        likely = [c for c in scored if c.score >= self.duplicate_threshold]
        return sorted(likely, key=lambda c: (-c.score, c.iid))[:limit]

    # ------------------------------------------------------------------ writing
    def create(
        self,
        project: str | None,
        title: str,
        description: str = "",
        labels: list[str] | None = None,
        affects: list[str] | None = None,
        if_duplicate: Literal["skip", "create"] = "skip",
        dry_run: bool = False,
    ) -> CreateIssueResult:
        self.base.access.need("write", "create_issue")
        if not title.strip():
            raise InvalidInput("title is empty", field="title")
        p = self.base.project(project)
        dupes = self.duplicates(p, title, description)
        body: dict[str, Any] = {"title": title.strip(), "description": description}
        if labels:
            body["labels"] = ",".join(labels)
        req = Request("post", f"/projects/{p.id}/issues", body)
        if dupes and if_duplicate == "skip":
            return CreateIssueResult(
                dry_run=dry_run,
                created=False,
                issue=None,
                duplicates=dupes,
                verification="not created: likely duplicates are open; comment on one of "
                "them, or call again with if_duplicate='create'",
            )
        if dry_run:
            return CreateIssueResult(
                dry_run=True,
                request=self.base.describe(req),
                created=False,
                issue=None,
                duplicates=dupes,
            )
        op = self.base.op("create an issue", p, GUEST_WRITE)
        made = self.base.apply("create_issue", p, req, op)
        iid = int(made["iid"])
        back = self.base.read(f"/issues/{iid}", f"read back issue #{iid}", p)
        verified = back.get("title") == body["title"] and back.get("state") == "opened"
        name = issue_name(p.path, iid)
        facts = [
            fact(name, "PART_OF", object=p.path, subject_type="issue", object_type="project"),
            fact(name, "HAS_TITLE", value=body["title"]),
            fact(name, "HAS_STATE", value="opened"),
            *(fact(name, "AFFECTS", object=a, subject_type="issue") for a in affects or []),
        ]
        audit_id, memory = self.base.finish(
            "create_issue",
            p,
            req,
            verified=verified,
            verification=f"read back #{iid}: title and state opened",
            facts=facts,
            iid=iid,
        )
        return CreateIssueResult(
            dry_run=False,
            created=True,
            issue=issue_out(back),
            duplicates=dupes,
            verified=verified,
            verification=f"read issue #{iid} back: title matches, state opened",
            audit_id=audit_id,
            memory=memory,
        )

    def comment(
        self, project: str | None, kind: Literal["issue", "mr"], iid: int, body: str, dry_run: bool
    ) -> NoteResult:
        """A comment on an issue (``#iid``) or a merge request (``!iid``)."""
        tool = "comment_issue" if kind == "issue" else "comment_merge_request"
        self.base.access.need("write", tool)
        if not body.strip():
            raise InvalidInput("body is empty", field="body")
        p = self.base.project(project)
        coll, mark = ("issues", "#") if kind == "issue" else ("merge_requests", "!")
        target = f"{p.path}{mark}{iid}"
        req = Request("post", f"/projects/{p.id}/{coll}/{iid}/notes", {"body": body})
        if dry_run:
            return NoteResult(
                dry_run=True, request=self.base.describe(req), note=None, target=target
            )
        made = self.base.apply(tool, p, req, self.base.op(f"comment on {target}", p, GUEST_WRITE))
        note_id = int(made["id"])
        back = self.base.read(f"/{coll}/{iid}/notes/{note_id}", "read the comment back", p)
        verified = back.get("body") == body
        name = issue_name(p.path, iid) if kind == "issue" else mr_name(p.path, iid)
        facts = [
            fact(name, "PART_OF", object=p.path, subject_type=kind, object_type="project"),
        ]
        audit_id, memory = self.base.finish(
            tool,
            p,
            req,
            verified=verified,
            verification=f"read note {note_id} back",
            facts=facts,
            note_id=note_id,
        )
        return NoteResult(
            dry_run=False,
            note=note_out(back),
            target=target,
            verified=verified,
            verification=f"read note {note_id} of {target} back: body matches",
            audit_id=audit_id,
            memory=memory,
        )

    def update(
        self,
        project: str | None,
        iid: int,
        *,
        title: str | None = None,
        description: str | None = None,
        add_labels: list[str] | None = None,
        remove_labels: list[str] | None = None,
        state: Literal["close", "reopen"] | None = None,
        assignee: str | None = None,
        dry_run: bool = False,
    ) -> UpdateIssueResult:
        self.base.access.need("write", "update_issue")
        p = self.base.project(project)
        body: dict[str, Any] = {}
        if title is not None:
            body["title"] = title
        if description is not None:
            body["description"] = description
        if add_labels:
            body["add_labels"] = ",".join(add_labels)
        if remove_labels:
            body["remove_labels"] = ",".join(remove_labels)
        if state:
            body["state_event"] = state
        if assignee is not None:
            body["assignee_ids"] = [self._user_id(assignee)] if assignee else []
        if not body:
            raise InvalidInput(
                "nothing to update", field="title", hint="Pass at least one field to change."
            )
        req = Request("put", f"/projects/{p.id}/issues/{iid}", body)
        if dry_run:
            return UpdateIssueResult(dry_run=True, request=self.base.describe(req), issue=None)
        op = self.base.op(f"update issue #{iid}", p, REPORTER)
        self.base.apply("update_issue", p, req, op)
        back = self.base.read(f"/issues/{iid}", f"read back issue #{iid}", p)
        problems = _update_problems(back, body, assignee)
        name = issue_name(p.path, iid)
        facts = [fact(name, "PART_OF", object=p.path, subject_type="issue", object_type="project")]
        if title is not None:
            facts.append(fact(name, "HAS_TITLE", value=title))
        if state:
            facts.append(fact(name, "HAS_STATE", value=str(back.get("state"))))
        for label in add_labels or []:
            facts.append(fact(name, "HAS_LABEL", value=label))
        for label in remove_labels or []:
            facts.append(fact(name, "HAS_LABEL", value=label, ended=True))
        verification = "read back: " + (
            "every field matches" if not problems else "; ".join(problems)
        )
        audit_id, memory = self.base.finish(
            "update_issue",
            p,
            req,
            verified=not problems,
            verification=verification,
            facts=facts,
            iid=iid,
        )
        return UpdateIssueResult(
            dry_run=False,
            issue=issue_out(back),
            verified=not problems,
            verification=verification,
            audit_id=audit_id,
            memory=memory,
        )

    def _user_id(self, username: str) -> int:
        users = self.base.client.get(
            "/users", Op(f"look up user {username}"), username=username.lstrip("@")
        )
        if not users:
            raise NotFound(f"no GitLab user {username!r}", hint="Check the username.")
        return int(users[0]["id"])


def _update_problems(back: dict[str, Any], body: dict[str, Any], assignee: str | None) -> list[str]:
    problems = []
    labels = set(back.get("labels") or [])
    if "title" in body and back.get("title") != body["title"]:
        problems.append("title differs")
    if "description" in body and (back.get("description") or "") != body["description"]:
        problems.append("description differs")
    for label in filter(None, str(body.get("add_labels", "")).split(",")):
        if label not in labels:
            problems.append(f"label {label} missing")
    for label in filter(None, str(body.get("remove_labels", "")).split(",")):
        if label in labels:
            problems.append(f"label {label} still set")
    want_state = {"close": "closed", "reopen": "opened"}.get(body.get("state_event", ""))
    if want_state and back.get("state") != want_state:
        problems.append(f"state is {back.get('state')}, not {want_state}")
    if assignee is not None:
        names = {a.get("username") for a in back.get("assignees") or []}
        if assignee and assignee.lstrip("@") not in names:
            problems.append(f"{assignee} is not assigned")
        if not assignee and names:
            problems.append("still assigned")
    return problems
