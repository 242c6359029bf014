"""Settings of the GPU jobs server (env prefix ``PAI_GPU_JOBS_``, config table ``[gpu_jobs]``)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from pai_core.settings import ServerSettings

__all__ = ["GpuJobsSettings"]


class GpuJobsSettings(ServerSettings):
    """Everything the GPU jobs server reads from its environment or the config file."""

    model_config = SettingsConfigDict(env_prefix="PAI_GPU_JOBS_", extra="ignore")
    server_name: ClassVar[str] = "gpu_jobs"

    ollama_urls: list[str] = Field(default_factory=list, description="Ollama workers (base URLs).")
    sd_urls: list[str] = Field(
        default_factory=list, description="Stable Diffusion workers (base URLs)."
    )
    queue_db: Path | None = Field(None, description="Durable queue (default: <data_dir>/jobs.db).")
