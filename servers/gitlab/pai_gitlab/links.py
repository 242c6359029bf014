"""Memory links: the predicates this server records, and ``link_to_memory``.

Entities are named the way GitLab references them, with the project: ``Issue group/app#42``,
``MR group/app!7``, ``Commit 1a2b3c4d``, and the project itself as ``group/app``.
"""

from __future__ import annotations

import re
from typing import Literal

from pai_core.errors import InvalidInput
from pai_gitlab.base import Base, Project, commit_name, fact, issue_name, mr_name
from pai_gitlab.client import enc
from pai_gitlab.models import LinkResult

__all__ = ["LINKABLE", "PREDICATES", "LinkService"]

#: (name, cardinality, description) of every predicate this server writes.
PREDICATES: list[tuple[str, Literal["one", "many"], str]] = [
    ("PART_OF", "one", "An issue, merge request or commit belongs to a GitLab project."),
    ("FIXES", "many", "A commit or merge request fixes (closes) an issue."),
    ("IMPLEMENTS", "many", "A merge request implements a feature, decision or entity."),
    ("AFFECTS", "many", "An issue affects a service, host or component."),
    ("RELATES_TO", "many", "A GitLab object mentions or relates to another entity."),
    ("HAS_STATE", "one", "The state of an issue or merge request (opened, closed, merged)."),
    ("HAS_TITLE", "one", "The title of an issue, merge request or commit."),
    ("HAS_LABEL", "many", "A label set on an issue."),
    ("MERGED_AS", "one", "A merged merge request and its merge commit."),
]
LINKABLE = ("FIXES", "IMPLEMENTS", "AFFECTS", "RELATES_TO")
_REF = re.compile(r"^(?:(?P<issue>#)|(?P<mr>!)|@?)(?P<id>[0-9a-fA-F]+)$")


class LinkService:
    def __init__(self, base: Base) -> None:
        self.base = base

    def _entity(self, p: Project, ref: str, field: str) -> tuple[str, str]:
        """The entity name and type of a reference that exists in ``p`` (checked in GitLab)."""
        m = _REF.match(ref.strip())
        if not m:
            raise InvalidInput(
                f"{field} {ref!r} is not a GitLab reference",
                field=field,
                hint="Use '#42' for an issue, '!7' for a merge request or a commit SHA.",
            )
        ident = m.group("id")
        if m.group("issue"):
            self.base.read(f"/issues/{int(ident)}", f"read issue #{ident}", p)
            return issue_name(p.path, int(ident)), "issue"
        if m.group("mr"):
            self.base.read(f"/merge_requests/{int(ident)}", f"read merge request !{ident}", p)
            return mr_name(p.path, int(ident)), "merge_request"
        if len(ident) < 7:
            raise InvalidInput("a commit SHA needs at least 7 hex digits", field=field)
        d = self.base.read(f"/repository/commits/{enc(ident)}", f"read commit {ident}", p)
        return commit_name(str(d["id"])), "commit"

    def link(
        self,
        project: str | None,
        subject: str,
        predicate: str,
        object: str,
        dry_run: bool = False,
    ) -> LinkResult:
        if predicate not in LINKABLE:
            raise InvalidInput(
                f"predicate {predicate!r} cannot be linked by hand",
                field="predicate",
                hint=f"Use one of {', '.join(LINKABLE)}; nothing was recorded.",
            )
        if not object.strip():
            raise InvalidInput("object is empty", field="object")
        p = self.base.project(project)
        subj, subj_type = self._entity(p, subject, "subject")
        target = object.strip()
        obj_type = None
        if _REF.match(target) and target[0] in "#!":
            target, obj_type = self._entity(p, target, "object")
        facts = [fact(subj, predicate, object=target, subject_type=subj_type, object_type=obj_type)]
        shown = {"subject": subj, "predicate": predicate, "object": target}
        if dry_run:
            return LinkResult(dry_run=True, request={"facts": [shown]}, **shown)
        entry = self.base.audit.append(
            "gitlab.link_to_memory", project=p.path, result="applied", facts=[shown]
        )
        seq = int(entry["seq"])
        return LinkResult(
            dry_run=False,
            verified=True,
            verification=f"{subject} exists in {p.path}",
            audit_id=seq,
            memory=self.base.remember(seq, facts),
            **shown,
        )
