"""The GPU jobs MCP server: tool declarations only; logic lives in :mod:`pai_gpu_jobs.service`."""

from __future__ import annotations

import base64
import json
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.types import CallToolResult, ImageContent, TextContent
from pydantic import Field

from pai_core.annotations import READ_ONLY, tool_annotations
from pai_core.app import add_health_tool, create_server, tool
from pai_gpu_jobs import __version__
from pai_gpu_jobs.models import (
    CleanupResult,
    GpuStatus,
    JobList,
    JobView,
    Message,
    Submitted,
    WorkerList,
    WorkerView,
)
from pai_gpu_jobs.settings import GpuJobsSettings

if TYPE_CHECKING:  # httpx, Pillow and the ledger load with the first tool call
    from pai_gpu_jobs.service import GpuJobsService

__all__ = ["build_server"]

INSTRUCTIONS = """The one fair queue for GPU work: never call Ollama or Stable Diffusion directly.
submit_llm_job / submit_image_job return a job_id at once; wait_job(job_id) waits with progress.
Image tiers: draft=20, standard=50, high=100 steps. Pass an idempotency_key when retrying a
submit so the job runs once. Outputs are verified files; cleanup_job removes them."""

JobId = Annotated[str, Field(description="The job_id a submit tool returned.")]
Client = Annotated[
    str | None, Field(description="Who submits (fair share is per client); default 'mcp'.")
]
Priority = Annotated[int, Field(description="Higher runs first among this client's jobs.")]
Deadline = Annotated[
    float | None, Field(description="Fail the job if it has not finished within this many s.")
]
IdemKey = Annotated[
    str | None, Field(description="Same key, same client: the existing job is returned.")
]
Preview = Annotated[bool, Field(description="Add small previews of the images as MCP images.")]
SUBMIT = tool_annotations(read_only=False, open_world=True)


def _probe(settings: GpuJobsSettings) -> dict[str, Any]:
    problems = [] if settings.workers else ["no workers: set PAI_GPU_JOBS_WORKERS"]
    ledger = "redis" if settings.redis_url is not None else f"sqlite:{settings.ledger_path}"
    return {
        "backend": ledger,
        "configured": not problems,
        "problems": problems,
        "details": {
            "workers": [
                {"name": w.name, "kind": w.kind, "gpu": w.gpu_label} for w in settings.workers
            ]
        },
    }


def build_server(settings: GpuJobsSettings) -> MCPServer[Any]:
    """Compose the server from its settings (the composition root calls this)."""
    cache: dict[str, GpuJobsService] = {}

    def svc() -> GpuJobsService:
        # Built on first use, so an unconfigured server still starts and reports health.
        if "s" not in cache:
            from pai_gpu_jobs.compose import build_service

            cache["s"] = build_service(settings)
        return cache["s"]

    @asynccontextmanager
    async def lifespan(_server: MCPServer[Any]) -> Any:
        try:
            yield {}
        finally:
            if "s" in cache:  # hand running jobs back to the queue for the other managers
                cache["s"].manager.stop()

    server = create_server(
        "gpu_jobs",
        version=__version__,
        instructions=INSTRUCTIONS,
        settings=settings,
        lifespan=lifespan,
    )
    add_health_tool(server, version=__version__, settings=settings, probe=lambda: _probe(settings))

    def with_preview(job: JobView, preview: bool) -> CallToolResult:
        content: list[Any] = [TextContent(type="text", text=job.model_dump_json())]
        if preview:
            from pai_gpu_jobs.outputs import preview_png

            for path in job.images[:4]:
                if Path(path).is_file():
                    data = base64.b64encode(preview_png(Path(path), settings.preview_px))
                    content.append(
                        ImageContent(type="image", data=data.decode(), mime_type="image/png")
                    )
        return CallToolResult(content=content, structured_content=json.loads(job.model_dump_json()))

    @tool(server, SUBMIT)
    def submit_llm_job(
        model: Annotated[str, Field(description="An Ollama model a worker has (list_workers).")],
        prompt: Annotated[str | None, Field(description="For llm.generate.")] = None,
        messages: Annotated[
            list[Message] | None, Field(description="For llm.chat: the conversation.")
        ] = None,
        system: Annotated[str | None, Field(description="System prompt (generate).")] = None,
        options: Annotated[
            dict[str, Any] | None, Field(description="Ollama options, e.g. temperature.")
        ] = None,
        client: Client = None,
        priority: Priority = 0,
        deadline_s: Deadline = None,
        idempotency_key: IdemKey = None,
    ) -> Submitted:
        """Queue an LLM job (prompt → llm.generate, messages → llm.chat); returns its job_id at
        once. It runs on a worker that has the model when the fair queue reaches it."""
        return svc().submit_llm(
            model,
            prompt=prompt,
            messages=messages,
            system=system,
            options=options,
            client=client,
            priority=priority,
            deadline_s=deadline_s,
            idempotency_key=idempotency_key,
        )

    @tool(server, SUBMIT)
    def submit_image_job(
        prompt: Annotated[str, Field(description="What to draw.")],
        model: Annotated[str | None, Field(description="Checkpoint (default: any).")] = None,
        tier: Annotated[
            str, Field(description="draft (20 steps), standard (50) or high (100).")
        ] = "standard",
        steps: Annotated[int | None, Field(description="Override the tier's steps.")] = None,
        width: Annotated[int, Field(description="Pixels, multiple of 8.")] = 512,
        height: Annotated[int, Field(description="Pixels, multiple of 8.")] = 512,
        count: Annotated[int, Field(description="Images to make (limit in health).")] = 1,
        seed: Annotated[int | None, Field(description="Seed (default random).")] = None,
        negative_prompt: Annotated[str, Field(description="What to avoid.")] = "",
        init_image: Annotated[
            str | None, Field(description="Path of a start image: img2img (A1111 workers).")
        ] = None,
        client: Client = None,
        priority: Priority = 0,
        deadline_s: Deadline = None,
        idempotency_key: IdemKey = None,
    ) -> Submitted:
        """Queue an image job (txt2img, or img2img with init_image); returns its job_id at once.
        The images are verified (decode, size, count) before the job succeeds."""
        return svc().submit_image(
            prompt,
            model=model,
            tier=tier,
            steps=steps,
            width=width,
            height=height,
            count=count,
            seed=seed,
            negative_prompt=negative_prompt,
            init_image=init_image,
            client=client,
            priority=priority,
            deadline_s=deadline_s,
            idempotency_key=idempotency_key,
        )

    @tool(server, READ_ONLY)
    def job_status(job_id: JobId, preview: Preview = False) -> Annotated[CallToolResult, JobView]:
        """A job's state, timings, worker, and outputs (text, or verified image paths)."""
        return with_preview(svc().status(job_id), preview)

    @tool(server, READ_ONLY)
    async def wait_job(
        job_id: JobId,
        ctx: Context,
        timeout_s: Annotated[
            float, Field(gt=0, le=3600, description="Return after this long even if not done.")
        ] = 300,
        preview: Preview = False,
    ) -> Annotated[CallToolResult, JobView]:
        """Wait until the job finishes (progress notifications on each state change; cancel the
        request to stop waiting — the job itself keeps running) and return it."""

        async def progress(done: float, total: float, message: str) -> None:
            await ctx.report_progress(done, total, message)

        return with_preview(await svc().wait(job_id, timeout_s, progress), preview)

    @tool(server, tool_annotations(read_only=False, destructive=True, idempotent=True))
    def cancel_job(job_id: JobId) -> JobView:
        """Cancel a job: a queued one at once, a running one as soon as its worker stops."""
        return svc().cancel(job_id)

    @tool(server, READ_ONLY)
    def list_jobs(
        state: Annotated[
            str | None, Field(description="queued, running, succeeded, failed, cancelled.")
        ] = None,
        client: Annotated[str | None, Field(description="Only this client's jobs.")] = None,
        kind: Annotated[str | None, Field(description="llm.generate, llm.chat, ...")] = None,
        worker: Annotated[str | None, Field(description="Only jobs run on this worker.")] = None,
        limit: Annotated[int, Field(ge=1, le=500)] = 50,
        offset: Annotated[int, Field(ge=0)] = 0,
    ) -> JobList:
        """List jobs, newest first, filtered (paginated)."""
        return svc().list(state, client, kind, worker, limit, offset)

    @tool(server, tool_annotations(read_only=True, open_world=True))
    def gpu_status() -> GpuStatus:
        """Per GPU: running jobs, capacity, queue depth, recent throughput, what its workers
        report (Ollama /api/ps, A1111 memory, ComfyUI system_stats) and NVML where local.
        Anything unknown says 'unavailable' and why."""
        return svc().gpu_status()

    @tool(server, READ_ONLY)
    def list_workers() -> WorkerList:
        """The workers, their models, load, health, and whether they are drained."""
        return svc().workers()

    @tool(server, tool_annotations(read_only=False, idempotent=True))
    def drain_worker(
        name: Annotated[str, Field(description="Worker name (list_workers).")],
    ) -> WorkerView:
        """Stop giving new jobs to a worker (running ones finish). Undo with undrain_worker."""
        return svc().set_drained(name, True)

    @tool(server, tool_annotations(read_only=False, idempotent=True))
    def undrain_worker(
        name: Annotated[str, Field(description="Worker name (list_workers).")],
    ) -> WorkerView:
        """Put a drained worker back in rotation."""
        return svc().set_drained(name, False)

    @tool(server, tool_annotations(read_only=False, destructive=True, idempotent=True))
    def cleanup_job(job_id: JobId) -> CleanupResult:
        """Delete a finished job's output files (its record stays)."""
        return svc().cleanup(job_id)

    return server
