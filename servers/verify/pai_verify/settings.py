"""Settings of the verify server (env prefix ``PAI_VERIFY_``, config table ``[verify]``)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from pai_core.settings import ServerSettings

__all__ = ["VerifySettings"]


class VerifySettings(ServerSettings):
    """Everything the verify server reads from its environment or the config file."""

    model_config = SettingsConfigDict(env_prefix="PAI_VERIFY_", extra="ignore")
    server_name: ClassVar[str] = "verify"

    chromium_path: str = Field("/usr/bin/chromium", description="Chromium executable (Playwright).")
    artifact_dir: Path | None = Field(
        None, description="Screenshots and diffs (default: <data_dir>/artifacts)."
    )
    allow_hosts: list[str] = Field(
        default_factory=list, description="If set, only these hosts (and their subdomains)."
    )
    deny_hosts: list[str] = Field(default_factory=list, description="Hosts never to check.")
    http_timeout_s: float = Field(10.0, gt=0, description="Default HTTP timeout.")
    page_timeout_s: float = Field(
        30.0, gt=0, description="How long a page may take to load in the browser."
    )
    max_concurrency: int = Field(20, ge=1, le=200, description="check_many parallelism.")
    artifact_max_age_s: int = Field(7 * 86400, gt=0, description="Artifacts older are swept.")
    artifact_max_bytes: int = Field(500 * 2**20, gt=0, description="Total artifact budget.")
    inline_image_max_bytes: int = Field(
        400_000, ge=0, description="Largest screenshot returned inline to the model."
    )

    @property
    def resolved_artifact_dir(self) -> Path:
        return self.artifact_dir or self.data_path / "artifacts"
