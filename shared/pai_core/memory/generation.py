"""A write generation in Redis: every write through the memory bumps it, in every process.

Caches of results derived from the memory (MemBrane's hot search results) put the generation
in their keys, so one write anywhere makes every cached result unreachable at once; entries
also expire after their TTL. A write bumps twice: inside its transaction, just before the
commit (Redis unreachable → the write fails and is rolled back: nothing written, an explicit
error), and right after it (so a result computed from the state before the commit, between the
two bumps, is never served). The counter is namespaced by the memory's location, so memories
sharing one Redis never share entries. ``redis`` is imported on first use.
"""

from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING, Any

from pai_core.errors import BackendUnavailable, MissingDependency

if TYPE_CHECKING:
    from pai_core.settings import MemorySettings

__all__ = ["Generation", "memory_namespace"]

log = logging.getLogger(__name__)


def memory_namespace(settings: MemorySettings) -> str:
    """A short id of where this memory lives (graph, file, vectors), for shared cache keys."""
    where = [str(settings.db_file), settings.graph_backend]
    if settings.graph_backend == "neo4j":
        where += [settings.neo4j_uri, settings.neo4j_database or ""]
    return hashlib.sha256("\0".join(where).encode()).hexdigest()[:12]


class Generation:
    """The memory's write counter in Redis; a commit hook of its stores."""

    def __init__(self, url: str, namespace: str, *, timeout: float = 5) -> None:
        from pai_core.memory.backends import redact_url

        self.address = redact_url(url)
        self.key = f"pai:memory:{namespace}:generation"
        self._url = url
        self._timeout = timeout
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            try:
                import redis
            except ImportError as exc:
                raise MissingDependency(
                    "memory redis_url needs the redis client, which is not installed; "
                    "nothing was changed",
                    extra="redis",
                    package="pai-membrane",
                ) from exc
            self._client = redis.Redis.from_url(
                self._url, socket_timeout=self._timeout, socket_connect_timeout=self._timeout
            )
        return self._client

    def unavailable(self, exc: Exception, what: str) -> BackendUnavailable:
        detail = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        return BackendUnavailable(
            f"cache backend redis at {self.address} (setting PAI_MEMORY_REDIS_URL) failed: "
            f"{detail}; {what}",
            hint="Start Redis (or unset PAI_MEMORY_REDIS_URL and restart), then call again.",
        )

    def current(self) -> int:
        import redis

        try:
            return int(self.client.get(self.key) or 0)
        except redis.RedisError as exc:
            raise self.unavailable(exc, "nothing was changed") from exc

    def before_commit(self) -> None:
        import redis

        try:
            self.client.incr(self.key)
        except redis.RedisError as exc:
            raise self.unavailable(exc, "the write was rolled back, nothing was changed") from exc

    def after_commit(self) -> None:
        import redis

        try:
            self.client.incr(self.key)
        except redis.RedisError as exc:  # the bump before the commit already invalidated
            log.warning("%s", self.unavailable(exc, "the write itself was committed"))

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
