"""What ``pai doctor`` says about the memory: which backends it uses and whether they agree.

One :class:`~pai_core.spec.Check` per line: the graph (SQLite file or Neo4j address), the vectors
(SQLite/NumPy, or Qdrant by URL or local mode), the cache (in-process or Redis), each reached
for real, so an unreachable one is one line naming the backend, the address and the setting;
then whether the derived stores agree with their sources: the full-text index has every fact
the graph holds, every document has its vector, and a Qdrant server holds every stored vector.
Addresses are shown without credentials. Qdrant is asked over its REST API and Redis with the
``redis`` client when installed, so ``pai_core`` needs neither (nor any server's code).
"""

from __future__ import annotations

import json
import sqlite3
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pai_core.errors import PaiError
from pai_core.spec import Check

if TYPE_CHECKING:
    from pai_core.settings import MemorySettings

__all__ = ["memory_checks", "qdrant_points", "redact_url"]


def redact_url(url: str) -> str:
    """``scheme://host:port`` of any URL: no user, password, path or query."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparseable address>"
    return f"{parts.scheme}://{parts.hostname or ''}{port}"


def qdrant_points(url: str, collection: str, api_key: str | None, timeout: float = 5) -> int | None:
    """Points in a Qdrant server's collection (None: no such collection), over REST.

    Raises ``OSError`` (with the address only) when the server cannot be reached or refuses.
    """
    request = urllib.request.Request(f"{url.rstrip('/')}/collections/{collection}")
    if api_key:
        request.add_header("api-key", api_key)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise OSError(f"HTTP {exc.code}") from None
    except (urllib.error.URLError, TimeoutError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise OSError(str(reason)) from None
    return int(body.get("result", {}).get("points_count") or 0)


def _sqlite_counts(settings: MemorySettings) -> dict[str, int]:
    """Documents, fact documents, vectors and pending vectors in the memory's file."""
    out = {"docs": 0, "fact_docs": 0, "vectors": 0, "cursor": 0}
    path = settings.db_file
    if not path.exists():
        return out
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "s_docs" in tables:
            out["docs"] = conn.execute("SELECT count(*) FROM s_docs").fetchone()[0]
            out["fact_docs"] = conn.execute(
                "SELECT count(*) FROM s_docs WHERE kind='fact'"
            ).fetchone()[0]
        if "s_vectors" in tables:
            out["vectors"] = conn.execute("SELECT count(*) FROM s_vectors").fetchone()[0]
        if "s_meta" in tables:
            row = conn.execute("SELECT value FROM s_meta WHERE key='facts_cursor'").fetchone()
            out["cursor"] = int(row[0]) if row else 0
    finally:
        conn.close()
    return out


def _graph(settings: MemorySettings, counts: dict[str, int]) -> list[Check]:
    from pai_core.memory.memory import Memory

    if settings.graph_backend == "sqlite" and not settings.db_file.exists():
        return [Check("memory graph", "ok", f"sqlite:{settings.db_file}: no memory yet")]
    memory = Memory(settings)
    try:
        store = memory.graph.store
        with store.read() as tx:
            facts = tx.count_facts()
            behind = len(tx.facts_after(counts["cursor"], 100_001))
    except PaiError as exc:
        return [Check("memory graph", "fail", str(exc))]
    finally:
        memory.stop()
    out = [Check("memory graph", "ok", f"{store.describe()}: {facts:,} facts")]
    if behind:
        more = "+" if behind > 100_000 else ""
        out.append(
            Check(
                "memory full text",
                "warn",
                f"{behind:,}{more} facts are not in the full-text index yet (MemBrane's "
                "indexer catches up while it runs; `pai membrane reindex` rebuilds it)",
            )
        )
    else:
        out.append(
            Check(
                "memory full text",
                "ok",
                f"the full-text index holds every fact ({counts['fact_docs']:,} fact documents; "
                "a note's links are indexed with the note)",
            )
        )
    return out


def _vectors(settings: MemorySettings, counts: dict[str, int]) -> list[Check]:
    docs, vectors = counts["docs"], counts["vectors"]
    agree = Check(
        "memory vectors vs documents",
        "ok" if vectors >= docs else "warn",
        f"{vectors:,} vectors for {docs:,} documents"
        + ("" if vectors >= docs else " (the rest wait for the indexer, or embeddings are off)"),
    )
    if settings.vector_backend == "numpy":
        return [Check("memory vectors", "ok", f"numpy, from {settings.db_file}"), agree]
    collection = settings.qdrant_collection
    if not settings.qdrant_url:
        where = f"qdrant local mode (each server process, rebuilt from {settings.db_file})"
        return [Check("memory vectors", "ok", f"{where}, collection {collection}"), agree]
    address = redact_url(settings.qdrant_url)
    key = settings.qdrant_api_key
    try:
        points = qdrant_points(
            settings.qdrant_url, collection, key.get_secret_value() if key else None
        )
    except OSError as exc:
        return [
            Check(
                "memory vectors",
                "fail",
                f"vector backend qdrant at {address} (setting PAI_MEMORY_QDRANT_URL) is "
                f"unreachable: {exc}",
            ),
            agree,
        ]
    held = "no collection yet" if points is None else f"{points:,} points"
    detail = f"qdrant at {address}, collection {collection}: {held}, {vectors:,} in SQLite"
    if points == vectors:
        return [Check("memory vectors", "ok", detail), agree]
    detail += " (a server rebuilds it at its next search; or `pai membrane reindex --vectors`)"
    return [Check("memory vectors", "warn", detail), agree]


def _cache(settings: MemorySettings) -> Check:
    if settings.redis_url is None:
        return Check("memory cache", "ok", "in-process")
    url = settings.redis_url.get_secret_value()
    address = redact_url(url)
    try:
        import redis
    except ImportError:
        return Check(
            "memory cache",
            "fail",
            f"cache backend redis at {address} needs the redis client: "
            "pip install 'pai-membrane[redis]'",
        )
    client: Any = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        detail = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        return Check(
            "memory cache",
            "fail",
            f"cache backend redis at {address} (setting PAI_MEMORY_REDIS_URL) is "
            f"unreachable: {detail}",
        )
    finally:
        client.close()
    return Check("memory cache", "ok", f"redis at {address}")


def memory_checks(settings: MemorySettings) -> list[Check]:
    """Every line of the memory's part of ``pai doctor``."""
    try:
        counts = _sqlite_counts(settings)
    except sqlite3.Error as exc:
        return [Check("memory", "fail", f"the memory database {settings.db_file} failed: {exc}")]
    return [*_graph(settings, counts), *_vectors(settings, counts), _cache(settings)]
