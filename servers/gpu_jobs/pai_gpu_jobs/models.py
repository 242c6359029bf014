"""Values of the GPU jobs server: worker declarations, jobs, and the tools' results."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

__all__ = [
    "TIERS",
    "CleanupResult",
    "GpuStatus",
    "GpuView",
    "JobList",
    "JobView",
    "Message",
    "Submitted",
    "WorkerConfig",
    "WorkerList",
    "WorkerView",
]

TIERS: dict[str, int] = {"draft": 20, "standard": 50, "high": 100}
"""Image quality tiers and the sampler steps each one sends to the worker."""

Kind = Literal["ollama", "a1111", "comfyui"]
JobKind = Literal["llm.generate", "llm.chat", "image.txt2img", "image.img2img"]
State = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class WorkerConfig(BaseModel):
    """One endpoint bound to one GPU (or the CPU), as declared in ``PAI_GPU_JOBS_WORKERS``."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    url: str = Field(description="Base URL, e.g. http://127.0.0.1:11434")
    kind: Kind
    gpu: int | str = Field(0, description="GPU index or label ('cpu' for none).")
    concurrency: int = Field(1, ge=1, le=256)
    models: list[str] = Field(default_factory=list, description="Empty: ask the worker.")

    @field_validator("url")
    @classmethod
    def _strip(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        return value.rstrip("/")

    @property
    def family(self) -> Literal["llm", "image"]:
        return "llm" if self.kind == "ollama" else "image"

    @property
    def gpu_label(self) -> str:
        return str(self.gpu)


class Message(BaseModel):
    """One chat message, as Ollama's /api/chat takes it."""

    role: Literal["system", "user", "assistant", "tool"]
    content: str


class Submitted(BaseModel):
    """What a submit tool returns at once."""

    job_id: str
    state: State
    duplicate: bool = Field(description="True when the idempotency key named an existing job.")
    queue_position: int | None = Field(None, description="Queued jobs ahead of it (approximate).")


class JobView(BaseModel):
    """A job as the ledger holds it."""

    job_id: str
    kind: JobKind
    client: str
    state: State
    model: str
    priority: int
    tier: str | None = None
    steps: int | None = None
    worker: str | None = Field(None, description="The worker that ran (or runs) it.")
    gpu: str | None = None
    attempts: int = 0
    submitted_at: float
    started_at: float | None = None
    finished_at: float | None = None
    queue_wait_s: float | None = None
    run_s: float | None = None
    deadline_at: float | None = None
    error: str | None = None
    text: str | None = Field(None, description="LLM output (for llm jobs).")
    images: list[str] = Field(default_factory=list, description="Paths of verified images.")
    verified: str | None = Field(None, description="What was checked on the outputs.")
    memory: dict[str, Any] | None = Field(None, description="Whether the outputs were remembered.")
    memory_pending: bool = Field(False, description="Succeeded; the memory note follows shortly.")


class JobList(BaseModel):
    jobs: list[JobView]
    total: int = Field(description="Jobs matching the filters (before the limit).")


class WorkerView(BaseModel):
    name: str
    kind: Kind
    url: str
    gpu: str
    concurrency: int
    running: int
    models: list[str]
    healthy: bool
    drained: bool = Field(description="Taken out of rotation by drain_worker.")
    admitted: bool = Field(description="Gets new jobs (healthy and not drained).")
    reason: str | None = Field(None, description="Why it is not admitted.")


class WorkerList(BaseModel):
    workers: list[WorkerView]


class GpuView(BaseModel):
    gpu: str
    workers: list[str]
    running: int
    capacity: int
    queue_depth: int = Field(description="Queued jobs some worker on this GPU could run.")
    finished_last_60s: int
    throughput_per_min: float
    reported: dict[str, Any] = Field(
        default_factory=dict, description="What each worker reports itself, or 'unavailable'."
    )
    nvml: dict[str, Any] | str = Field("unavailable", description="NVML readings when local.")


class GpuStatus(BaseModel):
    gpus: list[GpuView]
    queued: int
    running: int
    ledger: str
    nvml: str = Field(description="Whether NVML loaded here, and why not.")


class CleanupResult(BaseModel):
    job_id: str
    removed: list[str]
    audit_id: int | None = None
