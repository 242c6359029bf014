"""MemBrane's view of the shared memory: the common layers plus what only this server adds.

The graph, full-text index, vault and episodes come from :class:`pai_core.memory.Memory` (the
same database and vault every PAI server writes to). MemBrane adds the embedding model and the
hybrid search over it (:mod:`pai_membrane.search`), the background indexer that keeps search's
derived indexes caught up (so search only reads), and a watcher that picks up edits people make
in the vault while the server runs. Everything opens on first use.
"""

from __future__ import annotations

import logging
import threading
from functools import cached_property
from typing import TYPE_CHECKING

from pai_core.memory.memory import Memory
from pai_membrane.settings import MembraneSettings

if TYPE_CHECKING:
    from pai_core.memory.vault.service import Vault
    from pai_membrane.search.indexer import Indexer
    from pai_membrane.search.service import MemorySearch
    from pai_membrane.search.vectors import LocalEmbedder

__all__ = ["MembraneMemory"]

log = logging.getLogger(__name__)


class MembraneMemory(Memory):
    def __init__(self, settings: MembraneSettings) -> None:
        super().__init__(settings.memory)
        self.server_settings = settings
        self._watcher: threading.Thread | None = None
        self._watch_error: str | None = None
        self._stop = threading.Event()

    def ready_vault(self) -> Vault:
        vault = super().ready_vault()
        self.start_watcher()  # from the first use on, not at start-up
        self.indexer.start()  # notes written from now on get their vectors in the background
        return vault

    @cached_property
    def embedder(self) -> LocalEmbedder | None:
        """The embedding model (loaded on its first use), or None: search is full text only."""
        from pai_membrane.search.vectors import (
            LocalEmbedder,
            default_model_path,
            embeddings_available,
        )

        settings = self.server_settings
        if not settings.embeddings or not embeddings_available():
            return None
        if settings.embedding_model is None and default_model_path() is None:
            return None
        embedder = LocalEmbedder(settings.embedding_model)
        if self.settings.redis_url is not None:  # query vectors shared through Redis
            from pai_membrane.search.redis_cache import CachedEmbedder, RedisCache

            url = self.settings.redis_url.get_secret_value()
            cache = RedisCache(url, ttl_s=self.settings.redis_ttl_s)
            return CachedEmbedder(embedder, cache)  # type: ignore[return-value]
        return embedder

    @cached_property
    def search(self) -> MemorySearch:
        from pai_membrane.search.service import MemorySearch

        self.ready_vault()  # opening the vault reconciles it with its files, once per process
        vectors = None
        if self.settings.vector_backend == "qdrant":
            from pai_membrane.search.qdrant_store import QdrantVectorStore

            vectors = QdrantVectorStore.from_settings(self.settings)
        search = MemorySearch(
            self.index,
            self.graph,
            self.episodes,
            self.embedder,
            vectors=vectors,
            activity=self.indexer.activity,  # the indexer's batches wait for searches
        )
        if self.generation is not None:  # hot results shared through Redis, keyed by writes
            from pai_membrane.search.redis_cache import CachedSearch

            search = CachedSearch.around(search, self.settings, self.generation)
        self.indexer.start()
        return search

    @cached_property
    def indexer(self) -> Indexer:
        """Catches the derived indexes up in the background (search itself only reads)."""
        from pai_membrane.search.indexer import Indexer, SearchActivity

        return Indexer(
            lambda: self.search.sync_facts(),
            lambda n: self.search.embed_pending(n),
            activity=SearchActivity(),
        )

    def after_write(self) -> None:
        """MemBrane just wrote facts: index them for full text now (a search right after sees
        them) and let their vectors follow in the background."""
        self.search.sync_facts()
        self.indexer.kick()

    # ------------------------------------------------------------ the vault watcher
    @property
    def watcher_state(self) -> str:
        """``off``, ``not started`` (until the vault's first use), ``running`` or why it died."""
        if not self.server_settings.watch_vault:
            return "off"
        if self._watch_error:
            return f"stopped: {self._watch_error}"
        if self._watcher is None:
            return "not started"
        return "running" if self._watcher.is_alive() else "stopped"

    def start_watcher(self) -> None:
        """Watch the vault for edits made by people while the server runs."""
        if not self.server_settings.watch_vault or self._watcher is not None:
            return
        self._watcher = threading.Thread(target=self._watch, name="pai-vault-watch", daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        from watchfiles import watch

        root = self.settings.vault_dir
        root.mkdir(parents=True, exist_ok=True)
        try:
            for changes in watch(
                root, stop_event=self._stop, debounce=300, rust_timeout=1000, yield_on_timeout=False
            ):
                if any(path.endswith(".md") for _change, path in changes):
                    report = self.ready_vault().sync()
                    self.indexer.kick()  # their vectors
                    log.info(
                        "vault changed on disk: +%d ~%d -%d",
                        report.added,
                        report.updated,
                        report.removed,
                    )
        except Exception as exc:  # the watcher is a convenience; sync on demand still works
            self._watch_error = str(exc) or type(exc).__name__
            log.warning("vault watcher stopped: %s", exc)

    def stop(self) -> None:
        if "indexer" in self.__dict__:
            self.indexer.stop()
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(5)
            self._watcher = None
        super().stop()
