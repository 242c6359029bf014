"""Settings of the Verify server (env prefix ``PAI_VERIFY_``, config table ``[verify]``)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from pai_core.settings import ServerSettings

__all__ = ["VerifySettings"]


class VerifySettings(ServerSettings):
    """Everything the Verify server reads from its environment or the config file."""

    model_config = SettingsConfigDict(env_prefix="PAI_VERIFY_", extra="ignore")
    server_name: ClassVar[str] = "verify"

    chromium_path: str = Field(
        "/usr/bin/chromium", description="Chromium executable for Playwright."
    )
    artifact_dir: Path | None = Field(
        None, description="Screenshots and diffs (default: <data_dir>/artifacts)."
    )
    allow_hosts: list[str] = Field(
        default_factory=list, description="If set, only these hosts may be checked."
    )
    deny_hosts: list[str] = Field(
        default_factory=list, description="Hosts that may never be checked."
    )
