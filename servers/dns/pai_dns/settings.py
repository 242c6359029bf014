"""Settings of the DNS server (env prefix ``PAI_DNS_``, config table ``[dns]``)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from pai_core.errors import ConfigError
from pai_core.settings import ServerSettings

__all__ = ["DnsSettings"]


class DnsSettings(ServerSettings):
    """Everything the DNS server reads from its environment or the config file."""

    model_config = SettingsConfigDict(env_prefix="PAI_DNS_", extra="ignore")
    server_name: ClassVar[str] = "dns"

    zones: list[str] = Field(default_factory=list, description="Zones this server may change.")
    server: str | None = Field(None, description="Primary server address for UPDATE and AXFR.")
    port: int = Field(53, ge=1, le=65535, description="Primary server port.")
    tsig_key_name: str | None = Field(None, description="TSIG key name.")
    tsig_algorithm: str = Field("hmac-sha256", description="TSIG algorithm.")
    tsig_secret: SecretStr | None = Field(None, description="TSIG secret (base64).")
    tsig_secret_file: Path | None = Field(None, description="File holding the TSIG secret.")
    verify_servers: list[str] = Field(
        default_factory=list,
        description="Extra authoritative servers to verify on, as host or host:port "
        "(added to the zone's NS set and the primary).",
    )
    verify_timeout_s: float = Field(15.0, gt=0, description="How long verification may retry.")
    timeout_s: float = Field(5.0, gt=0, description="Per-query timeout.")
    plan_ttl_s: int = Field(900, gt=0, description="How long a plan stays applicable.")
    min_ttl: int = Field(60, ge=0, description="Smallest TTL a plan may set.")
    max_ttl: int = Field(86400, gt=0, description="Largest TTL a plan may set.")
    allow_apex_mail_records: bool = Field(
        False, description="Allow changes to MX and SPF TXT records at a zone apex."
    )
    max_change_share: float = Field(
        0.3,
        gt=0,
        le=1,
        description="Largest share of a zone's records one plan may change without force.",
    )
    min_records_for_share: int = Field(
        10, ge=0, description="Zones smaller than this are exempt from the share limit."
    )

    def secret(self) -> str | None:
        """The TSIG secret from ``tsig_secret`` or ``tsig_secret_file``."""
        if self.tsig_secret is not None:
            return self.tsig_secret.get_secret_value()
        if self.tsig_secret_file is not None:
            try:
                return self.tsig_secret_file.read_text().strip()
            except OSError as exc:
                raise ConfigError(
                    f"cannot read TSIG secret file {self.tsig_secret_file}: {exc.strerror}"
                ) from exc
        return None
