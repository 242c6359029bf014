"""Tool annotation presets, so every tool says what it does to the world.

``READ_ONLY`` tools observe; ``MUTATING`` tools change state but never destroy it (an
update that keeps history, an idempotent write); ``DESTRUCTIVE`` tools may remove or replace
something. ``open_world`` says the tool talks to systems outside PAI's own stores.
"""

from __future__ import annotations

from mcp.types import ToolAnnotations

__all__ = ["DESTRUCTIVE", "MUTATING", "READ_ONLY", "tool_annotations"]


def tool_annotations(
    *,
    read_only: bool,
    destructive: bool = False,
    idempotent: bool = False,
    open_world: bool = False,
    title: str | None = None,
) -> ToolAnnotations:
    """Build annotations; a read-only tool is never destructive and always idempotent."""
    if read_only:
        destructive, idempotent = False, True
    return ToolAnnotations(
        title=title,
        read_only_hint=read_only,
        destructive_hint=destructive,
        idempotent_hint=idempotent,
        open_world_hint=open_world,
    )


READ_ONLY = tool_annotations(read_only=True)
MUTATING = tool_annotations(read_only=False, destructive=False, idempotent=False)
DESTRUCTIVE = tool_annotations(read_only=False, destructive=True)
