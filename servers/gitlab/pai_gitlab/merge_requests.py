"""Merge requests: list, read (changed files paginated), create with a summary, merge."""

from __future__ import annotations

from typing import Any, Literal

from pai_core.errors import Conflict, InvalidInput, NotFound
from pai_gitlab.base import Base, commit_name, fact, issue_ref_name, mr_name, mr_out
from pai_gitlab.client import Request
from pai_gitlab.models import (
    ChangedFile,
    CreateMergeRequestResult,
    FileDiff,
    MergeRequestDetail,
    MergeRequestsPage,
    MergeResult,
    SummaryStats,
)
from pai_gitlab.summary import closing_issues, file_stat, summarize

__all__ = ["MergeRequestService", "changed_file"]

DEVELOPER = "the api scope and at least the Developer role"
MERGER = "the api scope and the right to merge into the target branch (Developer or Maintainer)"
_DIFF_MAX = 20_000
_DESCRIPTION_MAX = 8000


def changed_file(diff: dict[str, Any]) -> ChangedFile:
    s = file_stat(diff)
    return ChangedFile(
        path=s.path,
        old_path=s.old_path,
        status=s.status,
        additions=s.additions,
        deletions=s.deletions,
    )


class MergeRequestService:
    def __init__(self, base: Base) -> None:
        self.base = base

    def list_page(
        self,
        project: str | None,
        state: Literal["opened", "closed", "merged", "all"] = "opened",
        source_branch: str | None = None,
        target_branch: str | None = None,
        search: str | None = None,
        page: int = 1,
        per_page: int = 20,
    ) -> MergeRequestsPage:
        p = self.base.project(project)
        q: dict[str, Any] = {"state": state, "order_by": "updated_at"}
        for key, value in (
            ("source_branch", source_branch),
            ("target_branch", target_branch),
            ("search", search),
        ):
            if value:
                q[key] = value
        got = self.base.client.page(
            f"/projects/{p.id}/merge_requests",
            self.base.op("list merge requests", p),
            page=page,
            per_page=per_page,
            **q,
        )
        return MergeRequestsPage(
            project=p.path,
            merge_requests=[mr_out(d) for d in got.items],
            page=got.page,
            per_page=got.per_page,
            total=got.total,
            next_page=got.next_page,
        )

    def get(
        self,
        project: str | None,
        iid: int,
        page: int = 1,
        per_page: int = 50,
        file: str | None = None,
    ) -> MergeRequestDetail:
        p = self.base.project(project)
        op = self.base.op(f"read the changes of !{iid}", p)
        path = f"/projects/{p.id}/merge_requests/{iid}/diffs"
        # The MR and its changed files are read at once; the MR's error (a 404, a 403) is the
        # one raised when both fail, as when they were read one after the other.
        files = self.base.alongside(
            lambda: self.base.client.page(path, op, page=page, per_page=per_page)
        )
        d = self.base.read(f"/merge_requests/{iid}", f"read merge request !{iid}", p)
        got = files.result()
        diff = None
        if file:
            diff = self._file_diff(path, op, file, got.items)
        description = str(d.get("description") or "")
        return MergeRequestDetail(
            project=p.path,
            merge_request=mr_out(d),
            description=description[:_DESCRIPTION_MAX],
            description_truncated=len(description) > _DESCRIPTION_MAX,
            files=[changed_file(x) for x in got.items],
            diff=diff,
            page=got.page,
            per_page=got.per_page,
            total=got.total,
            next_page=got.next_page,
        )

    def _file_diff(self, path: str, op: Any, file: str, first: list[dict[str, Any]]) -> FileDiff:
        def match(items: list[dict[str, Any]]) -> dict[str, Any] | None:
            return next((x for x in items if file in (x.get("new_path"), x.get("old_path"))), None)

        found, page = match(first), 1
        while found is None:
            got = self.base.client.page(path, op, page=page, per_page=100)
            found = match(got.items)
            if got.next_page is None:
                break
            page = got.next_page
        if found is None:
            raise NotFound(f"{file} is not among the files this merge request changes")
        text = str(found.get("diff") or "")
        return FileDiff(path=file, diff=text[:_DIFF_MAX], truncated=len(text) > _DIFF_MAX)

    # ------------------------------------------------------------------ writing
    def create(
        self,
        project: str | None,
        source_branch: str,
        target_branch: str | None = None,
        title: str | None = None,
        prose: str | None = None,
        labels: list[str] | None = None,
        implements: list[str] | None = None,
        remove_source_branch: bool = False,
        dry_run: bool = False,
    ) -> CreateMergeRequestResult:
        self.base.access.need("write", "create_merge_request")
        p = self.base.project(project)
        target = target_branch or p.default_branch
        if not target:
            raise InvalidInput("the project has no default branch", field="target_branch")
        cmp = self.base.read(
            "/repository/compare",
            f"compare {target}...{source_branch}",
            p,
            **{"from": target, "to": source_branch},
        )
        commits = list(cmp.get("commits") or [])
        if not commits:
            raise Conflict(
                f"{source_branch} has no commits that {target} lacks",
                hint="Commit to the source branch first; nothing was changed.",
            )
        summary = summarize(p.path, commits, list(cmp.get("diffs") or []), prose)
        if not title:  # one commit: its title; several: the branch name in words
            one = str(commits[0].get("title") or "") if len(commits) == 1 else ""
            title = one or source_branch.replace("-", " ").replace("_", " ").capitalize()
        title = title.strip()
        body: dict[str, Any] = {
            "source_branch": source_branch,
            "target_branch": target,
            "title": title,
            "description": summary.markdown,
            "remove_source_branch": remove_source_branch,
        }
        if labels:
            body["labels"] = ",".join(labels)
        stats = SummaryStats(
            commits=len(commits),
            files=summary.files,
            additions=summary.additions,
            deletions=summary.deletions,
            areas=summary.areas,
            linked_issues=summary.linked_issues,
        )
        req = Request("post", f"/projects/{p.id}/merge_requests", body)
        common = {"title": title, "description": summary.markdown, "stats": stats}
        if dry_run:
            return CreateMergeRequestResult(
                dry_run=True, request=self.base.describe(req), merge_request=None, **common
            )
        op = self.base.op(f"open a merge request {source_branch} → {target}", p, DEVELOPER)
        made = self.base.apply("create_merge_request", p, req, op)
        iid = int(made["iid"])
        back = self.base.read(f"/merge_requests/{iid}", f"read back !{iid}", p)
        verified = (
            back.get("source_branch") == source_branch
            and back.get("target_branch") == target
            and back.get("state") == "opened"
        )
        name = mr_name(p.path, iid)
        closing = set(closing_issues(summary.markdown, p.path))
        facts = [
            fact(
                name, "PART_OF", object=p.path, subject_type="merge_request", object_type="project"
            ),
            fact(name, "HAS_TITLE", value=title),
            fact(name, "HAS_STATE", value="opened"),
            *(
                fact(name, "IMPLEMENTS", object=e, subject_type="merge_request")
                for e in implements or []
            ),
            *(
                fact(
                    name,
                    "FIXES" if ref in closing else "RELATES_TO",
                    object=issue_ref_name(ref),
                    subject_type="merge_request",
                    object_type="issue",
                )
                for ref in summary.linked_issues
            ),
        ]
        audit_id, memory = self.base.finish(
            "create_merge_request",
            p,
            req,
            verified=verified,
            verification=f"read back !{iid}",
            facts=facts,
            iid=iid,
        )
        return CreateMergeRequestResult(
            dry_run=False,
            merge_request=mr_out(back),
            verified=verified,
            verification=f"read !{iid} back: branches match, state opened",
            audit_id=audit_id,
            memory=memory,
            **common,
        )

    def merge(
        self,
        project: str | None,
        iid: int,
        sha: str,
        squash: bool = False,
        remove_source_branch: bool = False,
        merge_commit_message: str | None = None,
        dry_run: bool = False,
    ) -> MergeResult:
        self.base.access.need("full", "merge_merge_request")
        p = self.base.project(project)
        current = self.base.read(f"/merge_requests/{iid}", f"read merge request !{iid}", p)
        if current.get("state") != "opened":
            raise Conflict(
                f"!{iid} is {current.get('state')}, not open",
                hint="Only an open merge request can be merged; nothing was changed.",
            )
        if current.get("sha") != sha:
            raise Conflict(
                f"the source branch of !{iid} moved: its head is now {current.get('sha')}, "
                f"not {sha}",
                hint="Review the new commits (get_merge_request), then merge with the new "
                "sha; nothing was merged.",
            )
        body: dict[str, Any] = {
            "sha": sha,
            "squash": squash,
            "should_remove_source_branch": remove_source_branch,
        }
        if merge_commit_message:
            body["merge_commit_message"] = merge_commit_message
        req = Request("put", f"/projects/{p.id}/merge_requests/{iid}/merge", body)
        if dry_run:
            return MergeResult(dry_run=True, request=self.base.describe(req), merge_request=None)
        self.base.apply("merge_merge_request", p, req, self.base.op(f"merge !{iid}", p, MERGER))
        back = self.base.read(f"/merge_requests/{iid}", f"read back !{iid}", p)
        out = mr_out(back)
        verified = back.get("state") == "merged" and bool(out.merge_commit_sha)
        name = mr_name(p.path, iid)
        facts = [fact(name, "HAS_STATE", value="merged")]
        if out.merge_commit_sha:
            commit = commit_name(out.merge_commit_sha)
            facts += [
                fact(
                    name,
                    "MERGED_AS",
                    object=commit,
                    subject_type="merge_request",
                    object_type="commit",
                ),
                fact(
                    commit, "PART_OF", object=p.path, subject_type="commit", object_type="project"
                ),
                *(
                    fact(
                        commit,
                        "FIXES",
                        object=issue_ref_name(ref),
                        subject_type="commit",
                        object_type="issue",
                    )
                    for ref in closing_issues(str(back.get("description") or ""), p.path)
                ),
            ]
        audit_id, memory = self.base.finish(
            "merge_merge_request",
            p,
            req,
            verified=verified,
            verification=f"read back !{iid}: state {back.get('state')}",
            facts=facts,
            iid=iid,
            sha=sha,
        )
        return MergeResult(
            dry_run=False,
            merge_request=out,
            verified=verified,
            verification=f"read !{iid} back: state {back.get('state')}, merge commit "
            f"{out.merge_commit_sha}",
            audit_id=audit_id,
            memory=memory,
        )
