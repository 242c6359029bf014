"""Settings of the GitLab server (env prefix ``PAI_GITLAB_``, config table ``[gitlab]``)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from pai_core.settings import ServerSettings

__all__ = ["GitlabSettings"]


class GitlabSettings(ServerSettings):
    """Everything the GitLab server reads from its environment or the config file."""

    model_config = SettingsConfigDict(env_prefix="PAI_GITLAB_", extra="ignore")
    server_name: ClassVar[str] = "gitlab"

    url: str | None = Field(None, description="GitLab base URL, e.g. https://gitlab.example.com.")
    token: SecretStr | None = Field(
        None, description="Personal or project access token (api scope)."
    )
    default_project: str | None = Field(None, description="Project path used when none is given.")
