"""Settings of the Mail server (env prefix ``PAI_MAIL_``, config table ``[mail]``)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from pai_core.settings import ServerSettings

__all__ = ["MailSettings"]


class MailSettings(ServerSettings):
    """Everything the Mail server reads from its environment or the config file."""

    model_config = SettingsConfigDict(env_prefix="PAI_MAIL_", extra="ignore")
    server_name: ClassVar[str] = "mail"

    domains: list[str] = Field(
        default_factory=list, description="Mail domains this server provisions."
    )
    passwd_file: Path | None = Field(None, description="Dovecot passwd-file to manage.")
    imap_host: str = Field("127.0.0.1", description="IMAP server used to prove a login.")
    imap_port: int = Field(143, description="IMAP port.")
    smtp_host: str = Field("127.0.0.1", description="SMTP submission server.")
    smtp_port: int = Field(587, description="SMTP submission port.")
