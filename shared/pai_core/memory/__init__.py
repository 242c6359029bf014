"""The memory every PAI server shares: facts, notes, conversations, and what servers changed.

Layout (each imported on first use; importing this package costs nothing beyond ``pai_core``):

- :mod:`~pai_core.memory.db` — the one SQLite module: connections, schemas, transactions.
- :mod:`~pai_core.memory.graph` — the bi-temporal fact graph: ``model`` (values, name rules),
  ``rules`` (conflict detection, pure), ``predicates``, ``store`` (the backend Protocol),
  ``sqlite_store``, ``service`` (:class:`GraphService`), ``views`` (tool input/output models).
- :mod:`~pai_core.memory.vault` — the Markdown/PARA vault (files are the truth).
- :mod:`~pai_core.memory.episodes` — conversation transcripts as searchable episodes.
- :mod:`~pai_core.memory.fulltext` — the FTS5 index over facts, notes and episodes.
- :mod:`~pai_core.memory.timeparse` — ISO 8601 and relative times ("yesterday", "7d").
- :mod:`~pai_core.memory.memory` — :class:`Memory`, the layers composed over one location.
- :mod:`~pai_core.memory.record` — :class:`ChangeRecorder`: infrastructure servers record
  their verified changes as facts.

Where the memory lives is :class:`pai_core.settings.MemorySettings` (``PAI_MEMORY_*``,
``[memory]``), reached from every server's settings as ``settings.memory``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pai_core.memory.memory import Memory
    from pai_core.settings import MemorySettings

__all__ = ["open_memory"]


def open_memory(settings: MemorySettings) -> Memory:
    """The shared memory at ``settings``' location (nothing is opened until first use)."""
    from pai_core.memory.memory import Memory

    return Memory(settings)
