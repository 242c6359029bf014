"""What the vault returns (tool output models): light, so servers declare tools without
loading the vault itself."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

__all__ = ["NoteInfo", "SyncReport"]


class NoteInfo(BaseModel):
    """A note as tools show it (without its body)."""

    path: str
    title: str
    hash: str = Field(description="Pass as expected_hash to edit_note.")
    area: str | None
    tags: list[str]
    entities: list[str]
    updated: str
    error: str | None = None
    link_error: str | None = Field(
        None,
        description="Set when the note is written but its [[links]] to entities could not be "
        "recorded in the fact graph: why, and what to do.",
    )


class SyncReport(BaseModel):
    """What a sync of the vault with its files found."""

    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    errors: list[dict[str, Any]] = Field(
        default_factory=list, description="Notes with problems: path, line, message."
    )
