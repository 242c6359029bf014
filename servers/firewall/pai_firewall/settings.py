"""Settings of the Firewall server (env prefix ``PAI_FIREWALL_``, config table ``[firewall]``)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from pai_core.settings import ServerSettings
from pai_firewall.rules import TableRef

__all__ = ["FirewallSettings"]


class FirewallSettings(ServerSettings):
    """Everything the Firewall server reads from its environment or the config file."""

    model_config = SettingsConfigDict(env_prefix="PAI_FIREWALL_", extra="ignore")
    server_name: ClassVar[str] = "firewall"

    table: str = Field(
        "inet pai", description="The nftables table this server owns, '<family> <name>'."
    )
    netns: str | None = Field(
        None, description="Network namespace every nft command runs in (empty: the current one)."
    )
    nft_binary: str = Field("nft", description="The nft executable.")
    ip_binary: str = Field("ip", description="The ip executable (for `ip netns exec`).")
    constitution: Path | None = Field(
        None, description="YAML file of invariants and probes (without it, changes are refused)."
    )
    plan_ttl_s: int = Field(900, gt=0, description="How long a plan stays applicable.")
    default_confirm_s: int = Field(
        120, ge=1, description="Confirmation window when apply_change does not give one."
    )
    max_confirm_s: int = Field(3600, ge=1, description="Longest confirmation window allowed.")

    @field_validator("table")
    @classmethod
    def _table(cls, v: str) -> str:
        return str(TableRef.parse(v))

    @field_validator("netns")
    @classmethod
    def _netns(cls, v: str | None) -> str | None:
        return v or None

    @property
    def table_ref(self) -> TableRef:
        return TableRef.parse(self.table)
