"""Query embeddings and hot search results cached in Redis, shared by every process.

A query's vector is a pure function of the model and the text, so the key is
``<prefix>emb:<model>:<dim>:<sha256(text)>`` and nothing needs invalidating: another model
(or another dimension) reads other keys, and entries expire after ``ttl_s``. Only small calls
(queries) go through Redis; batches of documents go straight to the model (their vectors are
kept, by content hash, in SQLite).

Search results (:class:`CachedSearch`) are keyed by the memory's write generation
(:mod:`pai_core.memory.generation`), which every write through the memory bumps in Redis, in
whichever process: a write anywhere makes every cached result unreachable at once, and entries
expire after ``redis_result_ttl_s``.

Redis failing mid-run makes the call fail with one line naming the backend, the address and
the setting (no silent fallback to the model). ``redis`` is imported on first use.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pai_core.errors import BackendUnavailable
from pai_membrane.search.optional import import_extra

if TYPE_CHECKING:
    from pai_core.memory.generation import Generation
    from pai_core.settings import MemorySettings

__all__ = ["CachedEmbedder", "CachedSearch", "RedisCache"]

QUERY_BATCH = 4  # calls with at most this many texts are cached


def redact_redis_url(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or parts.path or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}"


class RedisCache:
    """A small byte cache over one Redis connection pool, with a TTL and a key prefix."""

    def __init__(
        self, url: str, *, ttl_s: int = 7 * 86400, prefix: str = "pai:membrane:", timeout: float = 5
    ) -> None:
        self.address = redact_redis_url(url)
        self.ttl_s = ttl_s
        self.prefix = prefix
        self._url = url
        self._timeout = timeout
        self._client: Any = None
        self.hits = 0
        self.misses = 0

    @property
    def client(self) -> Any:
        if self._client is None:
            redis = import_extra("redis", needed_by="the redis cache", extra="redis")
            self._client = redis.Redis.from_url(
                self._url, socket_timeout=self._timeout, socket_connect_timeout=self._timeout
            )
        return self._client

    def _unavailable(self, exc: Exception) -> BackendUnavailable:
        detail = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        return BackendUnavailable(
            f"cache backend redis at {self.address} (setting PAI_MEMORY_REDIS_URL) failed: "
            f"{detail}; nothing was changed",
        )

    def get_many(self, keys: list[str]) -> list[bytes | None]:
        import redis

        try:
            values: list[bytes | None] = self.client.mget([self.prefix + k for k in keys])
        except redis.RedisError as exc:
            raise self._unavailable(exc) from exc
        found = sum(v is not None for v in values)
        self.hits += found
        self.misses += len(values) - found
        return values

    def set_many(self, items: dict[str, bytes]) -> None:
        import redis

        try:
            pipe = self.client.pipeline(transaction=False)
            for key, value in items.items():
                pipe.set(self.prefix + key, value, ex=self.ttl_s)
            pipe.execute()
        except redis.RedisError as exc:
            raise self._unavailable(exc) from exc

    def clear(self) -> int:
        """Delete every key under the prefix (e.g. after changing the model); how many."""
        import redis

        try:
            keys = list(self.client.scan_iter(match=self.prefix + "*", count=1000))
            return int(self.client.delete(*keys)) if keys else 0
        except redis.RedisError as exc:
            raise self._unavailable(exc) from exc

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


class CachedEmbedder:
    """An :class:`~pai_membrane.search.vectors.Embedder` whose query vectors come from Redis
    when another call (any process) embedded the same text with the same model before."""

    def __init__(self, embedder: Any, cache: RedisCache, model: str | None = None) -> None:
        self.embedder = embedder
        self.cache = cache
        name = model or getattr(embedder, "model_name", None) or type(embedder).__name__
        self.model = hashlib.sha256(str(name).encode()).hexdigest()[:12]

    @property
    def dim(self) -> int:
        return int(self.embedder.dim)

    @dim.setter
    def dim(self, value: int) -> None:
        self.embedder.dim = value

    def __getattr__(self, name: str) -> Any:  # engines() and the like of the wrapped model
        return getattr(self.embedder, name)

    def _key(self, text: str) -> str:
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        return f"emb:{self.model}:{self.dim}:{digest}"

    def embed(self, texts: Sequence[str]) -> Any:
        import numpy as np

        if len(texts) > QUERY_BATCH:
            return self.embedder.embed(texts)
        keys = [self._key(t) for t in texts]
        cached = self.cache.get_many(keys)
        width = 4 * self.dim
        missing = [i for i, v in enumerate(cached) if v is None or len(v) != width]
        out: list[Any] = [
            None if v is None or len(v) != width else np.frombuffer(v, dtype=np.float32)
            for v in cached
        ]
        if missing:
            vectors = np.asarray(self.embedder.embed([texts[i] for i in missing]), np.float32)
            fresh: dict[str, bytes] = {}
            for row, i in enumerate(missing):
                out[i] = vectors[row]
                fresh[self._key(texts[i])] = vectors[row].tobytes()
            self.cache.set_many(fresh)
        return np.stack(out) if out else np.zeros((0, self.dim), dtype=np.float32)


class CachedSearch:
    """:class:`~pai_membrane.search.service.MemorySearch` whose ``search`` results are read
    from Redis when the same call was answered (by any process) since the last write."""

    def __init__(self, search: Any, cache: RedisCache, generation: Generation) -> None:
        self.inner = search
        self.cache = cache
        self.generation = generation

    @classmethod
    def around(cls, search: Any, settings: MemorySettings, generation: Generation) -> Any:
        from pai_core.memory.generation import memory_namespace

        assert settings.redis_url is not None
        cache = RedisCache(
            settings.redis_url.get_secret_value(),
            ttl_s=settings.redis_result_ttl_s,
            prefix=f"pai:membrane:{memory_namespace(settings)}:hits:",
        )
        return cls(search, cache, generation)

    def __getattr__(self, name: str) -> Any:  # sync_facts, recall, mode, … of the search
        return getattr(self.inner, name)

    def search(self, query: str, **options: Any) -> list[Any]:
        from pydantic import TypeAdapter

        from pai_membrane.search.views import SearchHit

        adapter = TypeAdapter(list[SearchHit])
        call = json.dumps([query, options], sort_keys=True, default=str)
        key = f"{self.generation.current()}:{hashlib.sha256(call.encode()).hexdigest()}"
        [found] = self.cache.get_many([key])
        if found is not None:
            return adapter.validate_json(found)
        hits = self.inner.search(query, **options)
        self.cache.set_many({key: adapter.dump_json(hits)})
        return list(hits)
