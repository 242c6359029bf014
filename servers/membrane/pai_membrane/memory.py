"""The composition of MemBrane's layers over one SQLite file and one vault directory.

Everything opens on first use, never at start-up, so a server with a large memory starts as
fast as an empty one.
"""

from __future__ import annotations

import logging
import threading
from functools import cached_property
from typing import TYPE_CHECKING

from pai_membrane.settings import MembraneSettings

if TYPE_CHECKING:  # the layers are imported on first use, keeping start-up light
    from pai_membrane.episodes.ingest import EpisodeStore
    from pai_membrane.graph.service import GraphService
    from pai_membrane.search.index import SearchIndex
    from pai_membrane.search.service import MemorySearch
    from pai_membrane.search.vectors import LocalEmbedder
    from pai_membrane.vault.service import Vault

__all__ = ["GraphLinker", "Memory"]

log = logging.getLogger(__name__)


class GraphLinker:
    """Records that a note MENTIONS the entities it links to ([[wiki links]], frontmatter)."""

    def __init__(self, graph: GraphService) -> None:
        self.graph = graph

    def link_note(self, note: str, entities: list[str]) -> None:
        self.graph.remember_many(
            [
                {
                    "subject": f"note:{note}",
                    "subject_type": "note",
                    "predicate": "MENTIONS",
                    "object": name,
                    "source": f"vault:{note}",
                }
                for name in entities
                if name.strip() and name.strip() != f"note:{note}"
            ]
        )


class Memory:
    def __init__(self, settings: MembraneSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._watcher: threading.Thread | None = None
        self._stop = threading.Event()
        self._synced = False

    @cached_property
    def graph(self) -> GraphService:
        from pai_membrane.graph.service import GraphService
        from pai_membrane.graph.sqlite_store import SqliteGraphStore

        return GraphService(SqliteGraphStore(self.settings.resolved_db_path))

    @cached_property
    def index(self) -> SearchIndex:
        from pai_membrane.search.index import SearchIndex

        return SearchIndex(self.settings.resolved_db_path)

    @cached_property
    def vault(self) -> Vault:
        from pai_membrane.vault.service import Vault

        vault = Vault(
            self.settings.resolved_vault_path,
            self.settings.para_folders,
            self.index,
            GraphLinker(self.graph),
        )
        return vault

    def ready_vault(self) -> Vault:
        """The vault, synced with the files once per process before first use."""
        with self._lock:
            vault = self.vault
            if not self._synced:
                report = vault.sync()
                self._synced = True
                self.start_watcher()  # from the first use on, not at start-up
                if report.errors:
                    log.warning("vault: %d note(s) with problems", len(report.errors))
        return vault

    @cached_property
    def episodes(self) -> EpisodeStore:
        from pai_membrane.episodes.ingest import EpisodeStore

        return EpisodeStore(self.index)

    @cached_property
    def embedder(self) -> LocalEmbedder | None:
        """The embedding model (loaded on its first use), or None: search is full text only."""
        from pai_membrane.search.vectors import (
            LocalEmbedder,
            default_model_path,
            embeddings_available,
        )

        if not self.settings.embeddings or not embeddings_available():
            return None
        if self.settings.embedding_model is None and default_model_path() is None:
            return None
        return LocalEmbedder(self.settings.embedding_model)

    @cached_property
    def search(self) -> MemorySearch:
        from pai_membrane.search.service import MemorySearch

        self.ready_vault()
        return MemorySearch(self.index, self.graph, self.episodes, self.embedder)

    def start_watcher(self) -> None:
        """Watch the vault for edits made by people while the server runs."""
        if not self.settings.watch_vault or self._watcher is not None:
            return
        self._watcher = threading.Thread(target=self._watch, name="pai-vault-watch", daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        from watchfiles import watch

        root = self.settings.resolved_vault_path
        root.mkdir(parents=True, exist_ok=True)
        try:
            for changes in watch(
                root, stop_event=self._stop, debounce=300, rust_timeout=1000, yield_on_timeout=False
            ):
                if any(path.endswith(".md") for _change, path in changes):
                    report = self.ready_vault().sync()
                    log.info(
                        "vault changed on disk: +%d ~%d -%d",
                        report.added,
                        report.updated,
                        report.removed,
                    )
        except Exception as exc:  # the watcher is a convenience; sync on demand still works
            log.warning("vault watcher stopped: %s", exc)

    def stop(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(5)
            self._watcher = None
