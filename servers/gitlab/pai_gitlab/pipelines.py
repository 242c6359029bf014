"""CI: pipelines and their jobs, job logs (masked, by tail or byte window), retry, wait."""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable

import anyio

from pai_core.errors import InvalidInput
from pai_gitlab.base import Base, Project, job_out, pipeline_out
from pai_gitlab.client import Request
from pai_gitlab.models import JobLog, PipelineDetail, PipelinesPage, RetryResult, WaitResult
from pai_gitlab.text import mask_secrets

__all__ = ["FINISHED", "PipelineService", "clean_log"]

DEVELOPER = "the api scope and at least the Developer role"
LOG_READ = "read_api scope and at least the Reporter role (job logs)"
FINISHED = frozenset({"success", "failed", "canceled", "skipped", "manual", "blocked"})
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_SECTION = re.compile(r"section_(?:start|end):\d+:[\w.-]+(?:\[[^\]]*\])?\r?")
MAX_LOG_BYTES = 64 * 1024

Progress = Callable[[float, float, str], Awaitable[None]]


def clean_log(raw: bytes) -> str:
    """A job trace as plain text: ANSI colours and GitLab's section markers removed."""
    text = raw.decode("utf-8", errors="replace")
    text = _SECTION.sub("", _ANSI.sub("", text))
    return text.replace("\r\n", "\n")


class PipelineService:
    def __init__(self, base: Base, *, secrets: list[str], min_poll_s: float = 2.0) -> None:
        self.base = base
        self._secrets = secrets
        self.min_poll_s = min_poll_s

    def list_page(
        self,
        project: str | None,
        ref: str | None = None,
        status: str | None = None,
        page: int = 1,
        per_page: int = 20,
    ) -> PipelinesPage:
        p = self.base.project(project)
        q = {k: v for k, v in (("ref", ref), ("status", status)) if v}
        got = self.base.client.page(
            f"/projects/{p.id}/pipelines",
            self.base.op("list pipelines", p),
            page=page,
            per_page=per_page,
            **q,
        )
        return PipelinesPage(
            project=p.path,
            pipelines=[pipeline_out(d) for d in got.items],
            page=got.page,
            per_page=got.per_page,
            total=got.total,
            next_page=got.next_page,
        )

    def _detail(self, p: Project, pipeline_id: int) -> PipelineDetail:
        d = self.base.read(f"/pipelines/{pipeline_id}", f"read pipeline {pipeline_id}", p)
        jobs = self.base.client.page(
            f"/projects/{p.id}/pipelines/{pipeline_id}/jobs",
            self.base.op(f"list the jobs of pipeline {pipeline_id}", p),
            per_page=100,
        )
        out = [job_out(j) for j in jobs.items]
        return PipelineDetail(
            project=p.path,
            pipeline=pipeline_out(d),
            jobs=out,
            by_status=dict(Counter(j.status for j in out)),
        )

    def get(self, project: str | None, pipeline_id: int) -> PipelineDetail:
        return self._detail(self.base.project(project), pipeline_id)

    def job_log(
        self,
        project: str | None,
        job_id: int,
        tail_lines: int | None = None,
        offset: int | None = None,
        length: int | None = None,
    ) -> JobLog:
        """A job's log: the last ``tail_lines`` lines (default 200), or ``length`` bytes from
        ``offset``; offsets count bytes of the cleaned, masked log; at most 64 KiB."""
        if tail_lines is not None and offset is not None:
            raise InvalidInput("pass tail_lines or offset, not both", field="offset")
        p = self.base.project(project)
        raw = self.base.client.get_text(
            f"/projects/{p.id}/jobs/{job_id}/trace",
            self.base.op(f"read the log of job {job_id}", p, LOG_READ),
        )
        text, masked = mask_secrets(clean_log(raw), self._secrets)
        data = text.encode()
        size = len(data)
        want = min(length or MAX_LOG_BYTES, MAX_LOG_BYTES)
        if offset is not None:
            start = min(max(offset, 0), size)
            end = min(start + want, size)
        else:
            body = data[:-1] if data.endswith(b"\n") else data
            cut = len(body)
            for _ in range(tail_lines or 200):
                cut = body.rfind(b"\n", 0, cut)
                if cut < 0:
                    break
            end = size
            start = max(cut + 1 if cut >= 0 else 0, size - want)
        window = data[start:end].decode("utf-8", errors="replace")
        return JobLog(
            project=p.path,
            job_id=job_id,
            total_bytes=size,
            start=start,
            end=end,
            text=window,
            masked=masked,
        )

    def retry(self, project: str | None, pipeline_id: int, dry_run: bool = False) -> RetryResult:
        self.base.access.need("write", "retry_pipeline")
        p = self.base.project(project)
        req = Request("post", f"/projects/{p.id}/pipelines/{pipeline_id}/retry", None)
        if dry_run:
            return RetryResult(dry_run=True, request=self.base.describe(req), pipeline=None)
        op = self.base.op(f"retry pipeline {pipeline_id}", p, DEVELOPER)
        self.base.apply("retry_pipeline", p, req, op)
        back = self.base.read(f"/pipelines/{pipeline_id}", f"read back pipeline {pipeline_id}", p)
        verified = back.get("status") not in ("failed", "canceled")
        verification = f"pipeline {pipeline_id} is {back.get('status')} after the retry"
        audit_id, _ = self.base.finish(
            "retry_pipeline",
            p,
            req,
            verified=verified,
            verification=verification,
            pipeline=pipeline_id,
        )
        return RetryResult(
            dry_run=False,
            pipeline=pipeline_out(back),
            verified=verified,
            verification=verification,
            audit_id=audit_id,
        )

    async def wait(
        self,
        project: str | None,
        pipeline_id: int,
        timeout_s: float,
        poll_s: float,
        progress: Progress | None = None,
    ) -> WaitResult:
        """Poll until the pipeline finishes or ``timeout_s`` passes, reporting progress."""
        p = await anyio.to_thread.run_sync(self.base.project, project)
        poll_s = max(poll_s, self.min_poll_s)
        started = time.monotonic()
        polls = 0
        while True:
            detail = await anyio.to_thread.run_sync(self._detail, p, pipeline_id)
            polls += 1
            elapsed = time.monotonic() - started
            status = detail.pipeline.status
            finished = status in FINISHED
            if progress is not None:
                done = sum(1 for j in detail.jobs if j.status in FINISHED)
                await progress(
                    min(elapsed, timeout_s),
                    timeout_s,
                    f"pipeline {pipeline_id}: {status}, {done}/{len(detail.jobs)} jobs finished",
                )
            if finished or elapsed + poll_s > timeout_s:
                break
            await anyio.sleep(poll_s)
        return WaitResult(
            project=p.path,
            pipeline=detail.pipeline,
            finished=finished,
            waited_s=round(time.monotonic() - started, 3),
            polls=polls,
            failed_jobs=[j for j in detail.jobs if j.status == "failed"],
        )
