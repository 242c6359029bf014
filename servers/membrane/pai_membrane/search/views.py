"""What search returns (a tool output model, light to import)."""

from __future__ import annotations

from pydantic import BaseModel

__all__ = ["SearchHit"]


class SearchHit(BaseModel):
    """One search result, with why it ranked where it did."""

    kind: str
    id: str
    title: str
    snippet: str
    score: float
    time: str | None
    why: list[str]
