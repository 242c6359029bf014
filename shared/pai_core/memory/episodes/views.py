"""What ingesting a transcript returns (a tool output model, light to import)."""

from __future__ import annotations

from pydantic import BaseModel

__all__ = ["IngestReport"]


class IngestReport(BaseModel):
    """What ingesting a transcript added."""

    path: str
    session_id: str | None
    added: int
    skipped_lines: int
    total_episodes: int
    pending_partial_line: bool
