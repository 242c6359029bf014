"""The composition of the memory's layers over one SQLite file and one vault directory.

Everything opens on first use, never at start-up, so a server with a large memory starts as
fast as an empty one. The membrane server extends :class:`Memory` with embedding-based search;
every other server uses the graph (through :mod:`pai_core.memory.record`).
"""

from __future__ import annotations

import logging
import threading
from functools import cached_property
from typing import TYPE_CHECKING

from pai_core.settings import MemorySettings

if TYPE_CHECKING:  # the layers are imported on first use, keeping start-up light
    from pai_core.memory.db import Database
    from pai_core.memory.episodes.ingest import EpisodeStore
    from pai_core.memory.fulltext import SearchIndex
    from pai_core.memory.generation import Generation
    from pai_core.memory.graph.service import GraphService
    from pai_core.memory.vault.service import Vault

__all__ = ["GraphLinker", "Memory"]

log = logging.getLogger(__name__)


class GraphLinker:
    """Records that a note MENTIONS the entities it links to ([[wiki links]], frontmatter)."""

    def __init__(self, graph: GraphService) -> None:
        self.graph = graph

    def link_note(self, note: str, entities: list[str]) -> None:
        from pai_core.memory.graph.service import FactIn

        facts = [
            FactIn(
                subject=f"note:{note}",
                subject_type="note",
                predicate="MENTIONS",
                object=name,
                source=f"vault:{note}",
            )
            for name in entities
            if name.strip() and name.strip() != f"note:{note}"
        ]
        if facts:
            self.graph.remember_many(facts)


class Memory:
    """The shared memory: graph, full-text index, vault and episodes in one place."""

    def __init__(self, settings: MemorySettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._synced = False

    @cached_property
    def generation(self) -> Generation | None:
        """The write counter in Redis that cached search results are keyed by (when a Redis
        URL is set and results are cached); every write through this memory bumps it."""
        if self.settings.redis_url is None or not self.settings.redis_result_ttl_s:
            return None
        from pai_core.memory.generation import Generation, memory_namespace

        url = self.settings.redis_url.get_secret_value()
        return Generation(url, memory_namespace(self.settings))

    @cached_property
    def db(self) -> Database:
        from pai_core.memory.db import Database

        db = Database(self.settings.db_file)
        if self.generation is not None:
            db.commit_hooks.append(self.generation)
        return db

    @cached_property
    def graph(self) -> GraphService:
        from pai_core.memory.graph.service import GraphService

        if self.settings.graph_backend == "neo4j":  # the driver is imported only when chosen
            from pai_core.memory.graph.neo4j_store import Neo4jGraphStore

            store = Neo4jGraphStore.from_settings(self.settings)
            if self.generation is not None:
                store.commit_hooks.append(self.generation)
            return GraphService(store)
        from pai_core.memory.graph.sqlite_store import SqliteGraphStore

        return GraphService(SqliteGraphStore(self.db))

    @cached_property
    def index(self) -> SearchIndex:
        from pai_core.memory.fulltext import SearchIndex

        return SearchIndex(self.db)

    @cached_property
    def vault(self) -> Vault:
        from pai_core.memory.vault.service import Vault

        return Vault(
            self.settings.vault_dir,
            self.settings.para_folders,
            self.index,
            GraphLinker(self.graph),
        )

    def ready_vault(self) -> Vault:
        """The vault, synced with the files once per process before first use."""
        with self._lock:
            vault = self.vault
            if not self._synced:
                report = vault.sync()
                self._synced = True
                if report.errors:
                    log.warning("vault: %d note(s) with problems", len(report.errors))
        return vault

    @cached_property
    def episodes(self) -> EpisodeStore:
        from pai_core.memory.episodes.ingest import EpisodeStore

        return EpisodeStore(self.index)

    def stop(self) -> None:
        if "graph" in self.__dict__ and self.settings.graph_backend != "sqlite":
            self.graph.store.close()
        if "db" in self.__dict__:
            self.db.close()
        generation = self.__dict__.get("generation")
        if generation is not None:
            generation.close()
