"""Settings of the GPU jobs server (env prefix ``PAI_GPU_JOBS_``, config table ``[gpu_jobs]``)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from pai_core.settings import ServerSettings
from pai_gpu_jobs.models import WorkerConfig

__all__ = ["GpuJobsSettings"]


class GpuJobsSettings(ServerSettings):
    """Everything the GPU jobs server reads from its environment or the config file."""

    model_config = SettingsConfigDict(env_prefix="PAI_GPU_JOBS_", extra="ignore")
    server_name: ClassVar[str] = "gpu_jobs"

    workers: list[WorkerConfig] = Field(
        default_factory=list,
        description='Workers as a JSON list of {"name", "url", "kind": ollama|a1111|comfyui, '
        '"gpu", "concurrency", "models"}.',
    )
    redis_url: SecretStr | None = Field(
        None, description="Share queue, leases and fairness through this Redis (several hosts)."
    )
    redis_prefix: str = Field("pai:gpu_jobs", description="Key prefix in Redis.")
    queue_db: Path | None = Field(None, description="SQLite ledger (default: <data_dir>/jobs.db).")
    lease_ttl_s: float = Field(15.0, gt=0, description="A worker slot lease lasts this long.")
    poll_s: float = Field(0.1, gt=0, description="How often a manager looks for work.")
    health_interval_s: float = Field(5.0, gt=0, description="Seconds between worker checks.")
    request_timeout_s: float = Field(600.0, gt=0, description="Longest one worker request.")
    max_attempts: int = Field(3, ge=1, le=10, description="Tries of a job (each on a new worker).")
    max_images: int = Field(16, ge=1, le=256, description="Most images one job may ask for.")
    max_side: int = Field(2048, ge=64, description="Largest image width or height.")
    workspace_max_age_s: float = Field(
        7 * 86400.0, gt=0, description="Output workspaces older than this are swept."
    )
    preview_px: int = Field(256, ge=32, le=1024, description="Longest side of a preview.")
    default_client: str = Field("mcp", description="Client id when a call names none.")

    @property
    def ledger_path(self) -> Path:
        return self.queue_db or self.data_path / "jobs.db"
