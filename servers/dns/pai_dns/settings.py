"""Settings of the DNS server (env prefix ``PAI_DNS_``, config table ``[dns]``)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from pai_core.settings import ServerSettings

__all__ = ["DnsSettings"]


class DnsSettings(ServerSettings):
    """Everything the DNS server reads from its environment or the config file."""

    model_config = SettingsConfigDict(env_prefix="PAI_DNS_", extra="ignore")
    server_name: ClassVar[str] = "dns"

    zones: list[str] = Field(default_factory=list, description="Zones this server may change.")
    server: str | None = Field(None, description="Primary server address for UPDATE and AXFR.")
    port: int = Field(53, description="Primary server port.")
    tsig_key_name: str | None = Field(None, description="TSIG key name.")
    tsig_algorithm: str = Field("hmac-sha256", description="TSIG algorithm.")
    tsig_secret: SecretStr | None = Field(None, description="TSIG secret (base64).")
    tsig_secret_file: Path | None = Field(None, description="File holding the TSIG secret.")
