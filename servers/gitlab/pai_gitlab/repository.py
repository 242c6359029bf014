"""Repository: read a file, commit several changes as one commit, branch, compare.

``commit_files`` is guarded twice. Before sending, the branch head must still be the
``last_commit_id`` the caller saw, or nothing is sent. Then, for the window between that check
and GitLab's commit, every update/move/delete/chmod action carries the id of the last commit
that touched its file *as of the caller's commit*: GitLab refuses the whole commit (400, "You
are attempting to update a file that has changed since you started editing it.") if any of
those files changed meanwhile, and a create fails if the file appeared. One commit, or none.
"""

from __future__ import annotations

import base64
from typing import Any

from pai_core.errors import Conflict, InvalidInput, NotFound
from pai_gitlab.base import Base, Project, commit_name, commit_out, fact, issue_ref_name
from pai_gitlab.client import Request, enc
from pai_gitlab.merge_requests import changed_file
from pai_gitlab.models import BranchResult, CommitAction, CommitResult, CompareOut, FileOut
from pai_gitlab.summary import closing_issues, mentioned_issues

__all__ = ["RepositoryService"]

DEVELOPER = "the api scope and at least the Developer role (push rights on the branch)"
_GUARDED = ("update", "move", "delete", "chmod")
MAX_ACTIONS = 500


class RepositoryService:
    def __init__(self, base: Base) -> None:
        self.base = base

    def get_file(
        self, project: str | None, path: str, ref: str | None = None, max_bytes: int = 100_000
    ) -> FileOut:
        p = self.base.project(project)
        ref = ref or p.default_branch or "HEAD"
        d = self.base.read(f"/repository/files/{enc(path)}", f"read {path} at {ref}", p, ref=ref)
        raw = base64.b64decode(d.get("content") or "")
        cut = raw[:max_bytes]
        try:
            content, encoding = cut.decode("utf-8"), "text"
        except UnicodeDecodeError:
            if len(cut) < len(raw):  # a multi-byte character cut in two: step back
                try:
                    content, encoding = cut[:-3].decode("utf-8", errors="strict"), "text"
                except UnicodeDecodeError:
                    content, encoding = base64.b64encode(cut).decode(), "base64"
            else:
                content, encoding = base64.b64encode(cut).decode(), "base64"
        return FileOut(
            project=p.path,
            path=path,
            ref=ref,
            size=int(d.get("size") or len(raw)),
            encoding=encoding,
            content=content,
            truncated=len(raw) > max_bytes,
            blob_id=d.get("blob_id"),
            commit_id=d.get("commit_id"),
            last_commit_id=d.get("last_commit_id"),
        )

    def _branch_head(self, p: Project, branch: str) -> str | None:
        try:
            d = self.base.read(f"/repository/branches/{enc(branch)}", f"read branch {branch}", p)
        except NotFound:
            return None
        return str(d["commit"]["id"])

    def _file_last_commit(self, p: Project, path: str, ref: str) -> str:
        """The last commit that changed ``path`` as of ``ref`` (a HEAD request: no content)."""
        op = self.base.op(f"read {path} at {ref}", p)
        resp = self.base.client.call(
            Request("head", f"/projects/{p.id}/repository/files/{enc(path)}", None, {"ref": ref}),
            op,
            raw=True,
        )
        last = resp.headers.get("X-Gitlab-Last-Commit-Id")
        if not last:
            raise NotFound(f"{path} does not exist at {ref}")
        return str(last)

    def commit_files(
        self,
        project: str | None,
        branch: str,
        message: str,
        actions: list[CommitAction],
        last_commit_id: str,
        start_branch: str | None = None,
        author_name: str | None = None,
        author_email: str | None = None,
        dry_run: bool = False,
    ) -> CommitResult:
        self.base.access.need("write", "commit_files")
        if any(a.action == "delete" for a in actions):
            self.base.access.need("full", "commit_files with a delete action")
        if not actions:
            raise InvalidInput("actions is empty", field="actions")
        if len(actions) > MAX_ACTIONS:
            raise InvalidInput(f"at most {MAX_ACTIONS} actions in one commit", field="actions")
        if not message.strip():
            raise InvalidInput("message is empty", field="message")
        paths = [a.file_path for a in actions]
        if len(set(paths)) != len(paths):
            raise InvalidInput(
                "a file appears in two actions", field="actions", hint="One action per file."
            )
        for i, a in enumerate(actions):
            if a.action in ("create", "update") and a.content is None:
                raise InvalidInput(
                    f"actions[{i}] ({a.action}) needs content", field=f"actions[{i}]"
                )
            if a.action == "move" and not a.previous_path:
                raise InvalidInput(
                    f"actions[{i}] (move) needs previous_path", field=f"actions[{i}]"
                )
        p = self.base.project(project)
        base_branch = branch
        head = self._branch_head(p, branch)
        if head is None and start_branch:
            base_branch = start_branch
            head = self._branch_head(p, start_branch)
        if head is None:
            raise NotFound(
                f"branch {branch} does not exist in {p.path}",
                hint="Pass start_branch to create it from another branch; nothing was changed.",
            )
        if head != last_commit_id:
            raise Conflict(
                f"{base_branch} moved since you read it: its head is {head}, not {last_commit_id}",
                hint="Read the files again (get_file / compare), redo the change on top of the "
                "new head, and pass its commit id; nothing was committed.",
            )
        sent = []
        for a in actions:
            item: dict[str, Any] = {"action": a.action, "file_path": a.file_path}
            if a.previous_path:
                item["previous_path"] = a.previous_path
            if a.content is not None:
                item["content"] = a.content
                item["encoding"] = a.encoding
            if a.execute_filemode is not None:
                item["execute_filemode"] = a.execute_filemode
            if a.action in _GUARDED:
                guarded = a.previous_path if a.action == "move" else a.file_path
                assert guarded is not None
                item["last_commit_id"] = self._file_last_commit(p, guarded, last_commit_id)
            sent.append(item)
        body: dict[str, Any] = {"branch": branch, "commit_message": message, "actions": sent}
        if base_branch != branch:
            body["start_branch"] = base_branch
        if author_name:
            body["author_name"] = author_name
        if author_email:
            body["author_email"] = author_email
        req = Request("post", f"/projects/{p.id}/repository/commits", body)
        if dry_run:
            return CommitResult(
                dry_run=True,
                request=self.base.describe(req),
                project=p.path,
                branch=branch,
                commit=None,
                files=paths,
            )
        op = self.base.op(f"commit {len(actions)} change(s) to {branch}", p, DEVELOPER)
        made = self.base.apply("commit_files", p, req, op)
        sha = str(made["id"])
        back = self.base.read(f"/repository/commits/{sha}", "read the new commit back", p)
        now = self._branch_head(p, branch)
        parents = list(back.get("parent_ids") or [])
        verified = now == sha and parents[:1] == [last_commit_id]
        verification = (
            f"{branch} head is {now}; the commit's parent is {parents[:1] or 'none'} "
            f"(expected {sha} on top of {last_commit_id})"
        )
        name = commit_name(sha)
        closing = set(closing_issues(message, p.path))
        facts = [
            fact(name, "PART_OF", object=p.path, subject_type="commit", object_type="project"),
            fact(name, "HAS_TITLE", value=message.split("\n", 1)[0]),
            *(
                fact(
                    name,
                    "FIXES" if ref in closing else "RELATES_TO",
                    object=issue_ref_name(ref),
                    subject_type="commit",
                    object_type="issue",
                )
                for ref in mentioned_issues(message, p.path)
            ),
        ]
        audit_id, memory = self.base.finish(
            "commit_files",
            p,
            req,
            verified=verified,
            verification=verification,
            facts=facts,
            commit=sha,
            branch=branch,
        )
        return CommitResult(
            dry_run=False,
            project=p.path,
            branch=branch,
            commit=commit_out(back),
            files=paths,
            verified=verified,
            verification=verification,
            audit_id=audit_id,
            memory=memory,
        )

    def create_branch(
        self, project: str | None, branch: str, ref: str, dry_run: bool = False
    ) -> BranchResult:
        self.base.access.need("write", "create_branch")
        p = self.base.project(project)
        req = Request(
            "post", f"/projects/{p.id}/repository/branches", {"branch": branch, "ref": ref}
        )
        if dry_run:
            return BranchResult(
                dry_run=True,
                request=self.base.describe(req),
                project=p.path,
                branch=branch,
                commit_id=None,
            )
        op = self.base.op(f"create branch {branch} from {ref}", p, DEVELOPER)
        made = self.base.apply("create_branch", p, req, op)
        want = str(made["commit"]["id"])
        now = self._branch_head(p, branch)
        verified = now == want
        verification = f"{branch} exists at {now}"
        audit_id, _ = self.base.finish(
            "create_branch", p, req, verified=verified, verification=verification, branch=branch
        )
        return BranchResult(
            dry_run=False,
            project=p.path,
            branch=branch,
            commit_id=now,
            verified=verified,
            verification=verification,
            audit_id=audit_id,
        )

    def compare(
        self,
        project: str | None,
        base: str,
        head: str,
        page: int = 1,
        per_page: int = 50,
        straight: bool = False,
    ) -> CompareOut:
        p = self.base.project(project)
        d = self.base.read(
            "/repository/compare",
            f"compare {base}...{head}",
            p,
            **{"from": base, "to": head, "straight": str(straight).lower()},
        )
        diffs = list(d.get("diffs") or [])
        commits = list(d.get("commits") or [])
        start = (page - 1) * per_page
        return CompareOut(
            project=p.path,
            base=base,
            head=head,
            commits=[commit_out(c) for c in commits[-50:]],
            commits_total=len(commits),
            files=[changed_file(x) for x in diffs[start : start + per_page]],
            same_ref=bool(d.get("compare_same_ref")),
            page=page,
            per_page=per_page,
            total=len(diffs),
            next_page=page + 1 if start + per_page < len(diffs) else None,
        )
