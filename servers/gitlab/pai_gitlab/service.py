"""The GitLab service: one object per area, sharing one :class:`~pai_gitlab.base.Base`."""

from __future__ import annotations

from dataclasses import dataclass

from pai_gitlab.base import Base
from pai_gitlab.issues import IssueService
from pai_gitlab.links import LinkService
from pai_gitlab.merge_requests import MergeRequestService
from pai_gitlab.pipelines import PipelineService
from pai_gitlab.repository import RepositoryService

__all__ = ["GitlabService"]


@dataclass
class GitlabService:
    base: Base
    issues: IssueService
    mrs: MergeRequestService
    repo: RepositoryService
    ci: PipelineService
    links: LinkService

    @classmethod
    def over(
        cls,
        base: Base,
        *,
        secrets: list[str],
        duplicate_threshold: float = 0.55,
        min_poll_s: float = 2.0,
    ) -> GitlabService:
        return cls(
            base=base,
            issues=IssueService(base, duplicate_threshold=duplicate_threshold),
            mrs=MergeRequestService(base),
            repo=RepositoryService(base),
            ci=PipelineService(base, secrets=secrets, min_poll_s=min_poll_s),
            links=LinkService(base),
        )
