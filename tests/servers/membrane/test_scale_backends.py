"""Same tools, same results, other engines: search over Qdrant ranks the labelled set exactly as
over the NumPy matrix, and the memory settings choose Qdrant and the Redis cache."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pai_core.memory.episodes.ingest import EpisodeStore
from pai_core.memory.fulltext import SearchIndex
from pai_core.memory.graph.service import GraphService
from pai_core.memory.graph.sqlite_store import SqliteGraphStore
from pai_core.memory.vault.service import Vault
from pai_core.settings import MemorySettings, load_settings
from pai_membrane.search.qdrant_store import QdrantVectorStore
from pai_membrane.search.redis_cache import CachedEmbedder, RedisCache
from pai_membrane.search.service import MemorySearch
from pai_membrane.search.vectors import LocalEmbedder
from pai_membrane.settings import MembraneSettings
from tests.servers.membrane.retrieval import load_set, queries_of, ranked, write_set
from tests.servers.membrane.test_redis_cache import _start
from tests.servers.membrane.test_retrieval import needs_embeddings


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    from tests.conftest import stop_process

    proc, url = _start(tmp_path)
    yield url
    stop_process(proc)


@needs_embeddings
def test_search_over_qdrant_ranks_like_the_numpy_matrix(tmp_path: Path, redis_url: str) -> None:
    db = tmp_path / "m.db"
    index = SearchIndex(db)
    vault = Vault(tmp_path / "vault", ["1-Projects", "2-Areas", "3-Resources", "4-Archives"], index)
    model = LocalEmbedder()
    if model.small is not None:
        model.large = None  # the NumPy encoder alone: no torch start for a few notes
    embedder = CachedEmbedder(model, RedisCache(redis_url, prefix="rank:"))
    graph, episodes = GraphService(SqliteGraphStore(db)), EpisodeStore(index)
    numpy_search = MemorySearch(index, graph, episodes, embedder)
    items = load_set()[:8]
    write_set(vault, items)
    assert numpy_search.embed_pending() == len(items)  # vectors in SQLite, read by both
    qdrant = QdrantVectorStore()
    qdrant_search = MemorySearch(index, graph, episodes, embedder, vectors=qdrant)
    queries = queries_of(items)
    for q in queries:
        for ranking in ("whole", "hybrid"):
            assert ranked(qdrant_search, q["query"], ranking) == ranked(
                numpy_search, q["query"], ranking
            ), (q["query"], ranking)
    assert qdrant.full_loads == 1
    assert embedder.cache.misses == len(queries)  # each query embedded once, then from Redis
    qdrant.close()


@needs_embeddings
def test_memory_settings_choose_qdrant_and_the_redis_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_url: str
) -> None:
    from pai_membrane.memory import MembraneMemory

    monkeypatch.setenv("PAI_MEMORY_VECTOR_BACKEND", "qdrant")
    monkeypatch.setenv("PAI_MEMORY_REDIS_URL", redis_url)
    monkeypatch.setenv("PAI_MEMORY_DB_PATH", str(tmp_path / "m.db"))
    monkeypatch.setenv("PAI_MEMORY_VAULT_PATH", str(tmp_path / "vault"))
    memory_settings = MemorySettings()
    assert memory_settings.redis_url is not None and "redis" not in repr(memory_settings.redis_url)
    settings = load_settings(MembraneSettings, config_file=tmp_path / "none.toml")
    memory = MembraneMemory(settings)
    try:
        search = memory.search
        assert isinstance(search.vectors, QdrantVectorStore)
        assert isinstance(search.embedder, CachedEmbedder)
        search.embedder.embed(["where does the proxy run"])
        search.embedder.embed(["where does the proxy run"])
        assert (search.embedder.cache.hits, search.embedder.cache.misses) == (1, 1)
    finally:
        memory.stop()
