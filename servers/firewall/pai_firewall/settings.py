"""Settings of the Firewall server (env prefix ``PAI_FIREWALL_``, config table ``[firewall]``)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from pai_core.settings import ServerSettings

__all__ = ["FirewallSettings"]


class FirewallSettings(ServerSettings):
    """Everything the Firewall server reads from its environment or the config file."""

    model_config = SettingsConfigDict(env_prefix="PAI_FIREWALL_", extra="ignore")
    server_name: ClassVar[str] = "firewall"

    table: str = Field("pai", description="The nftables table this server owns (inet family).")
    netns: str | None = Field(
        None, description="Network namespace to act in (default: the current one)."
    )
    nft_binary: str = Field("nft", description="The nft executable.")
