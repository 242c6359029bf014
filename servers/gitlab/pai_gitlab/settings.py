"""Settings of the GitLab server (env prefix ``PAI_GITLAB_``, config table ``[gitlab]``)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from pai_core.errors import ConfigError
from pai_core.settings import ServerSettings

__all__ = ["GitlabSettings", "Mode"]

Mode = Literal["read-only", "write", "full"]


class GitlabSettings(ServerSettings):
    """Everything the GitLab server reads from its environment or the config file."""

    model_config = SettingsConfigDict(env_prefix="PAI_GITLAB_", extra="ignore")
    server_name: ClassVar[str] = "gitlab"

    url: str | None = Field(None, description="GitLab base URL, e.g. https://gitlab.example.com.")
    token: SecretStr | None = Field(
        None, description="Personal, project or group access token (api scope for writes)."
    )
    token_file: Path | None = Field(None, description="File holding the access token.")
    ca_bundle: Path | None = Field(
        None, description="CA bundle (PEM) that signs a self-hosted GitLab's certificate."
    )
    mode: Mode = Field(
        "read-only",
        description="read-only: reads only; write: issues, comments, branches, MRs, commits "
        "(no file deletions); full: adds merging and deleting.",
    )
    projects: list[str] = Field(
        default_factory=list,
        description="Projects (paths or numeric ids) this server may touch; empty = all the "
        "token can see.",
    )
    default_project: str | None = Field(None, description="Project used when none is given.")
    timeout_s: float = Field(30.0, gt=0, description="Per-request timeout.")
    max_retries: int = Field(
        4, ge=0, le=20, description="Retries after 429 (Retry-After) and 5xx answers."
    )
    max_retry_wait_s: float = Field(
        60.0, gt=0, description="Longest Retry-After this server waits for before giving up."
    )
    min_poll_s: float = Field(
        2.0, gt=0, description="Shortest interval at which wait_pipeline polls GitLab."
    )
    duplicate_threshold: float = Field(
        0.55, gt=0, le=1, description="Similarity from which an open issue counts as a duplicate."
    )

    def secret(self) -> str | None:
        """The token from ``token`` or ``token_file``."""
        if self.token is not None:
            return self.token.get_secret_value().strip() or None
        if self.token_file is not None:
            try:
                return self.token_file.read_text().strip() or None
            except OSError as exc:
                raise ConfigError(
                    f"cannot read token file {self.token_file}: {exc.strerror}"
                ) from exc
        return None
