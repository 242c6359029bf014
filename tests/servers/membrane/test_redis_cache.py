"""Query embeddings cached in a real Redis (Debian redis-server, started here on loopback)."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from pai_core.errors import BackendUnavailable
from pai_membrane.search.redis_cache import CachedEmbedder, RedisCache
from tests.conftest import free_port, require_binary, stop_process, wait_for_port


class CountingEmbedder:
    """A deterministic stand-in for the model that counts the texts it embeds."""

    def __init__(self, name: str = "model-a") -> None:
        self.model_name = name
        self.dim = 8
        self.calls: list[int] = []

    def embed(self, texts: list[str]) -> np.ndarray:
        self.calls.append(len(texts))
        rows = [np.frombuffer(t.encode().ljust(32, b"\0")[:32], dtype=np.float32) for t in texts]
        return np.stack(rows).astype(np.float32)


def _start(directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = require_binary("redis-server", package="redis-server")
    port, password = free_port(), secrets.token_hex(12)
    cmd = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory),
           "--save", "", "--appendonly", "no", "--requirepass", password]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port, proc)
    return proc, f"redis://:{password}@127.0.0.1:{port}/0"


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    proc, url = _start(tmp_path_factory.mktemp("redis"))
    yield url
    stop_process(proc)


def test_a_query_embedded_once_is_read_from_redis_by_every_process(redis_url: str) -> None:
    model = CountingEmbedder()
    first = CachedEmbedder(model, RedisCache(redis_url, prefix="t1:"))
    a = first.embed(["where does membrane run"])
    other = CachedEmbedder(model, RedisCache(redis_url, prefix="t1:"))  # another process
    b = other.embed(["where does membrane run"])
    assert np.array_equal(a, b) and a.shape == (1, 8)
    assert model.calls == [1]  # embedded once, then a hit
    assert (other.cache.hits, other.cache.misses) == (1, 0)
    mixed = other.embed(["where does membrane run", "something new"])
    assert model.calls == [1, 1] and np.array_equal(mixed[0], a[0])
    key = other.cache.prefix + other._key("something new")
    assert 0 < other.cache.client.ttl(key) <= other.cache.ttl_s


def test_another_model_reads_other_keys_and_batches_bypass(redis_url: str) -> None:
    a, b = CountingEmbedder("model-a"), CountingEmbedder("model-b")
    CachedEmbedder(a, RedisCache(redis_url, prefix="t2:")).embed(["q"])
    CachedEmbedder(b, RedisCache(redis_url, prefix="t2:")).embed(["q"])
    assert a.calls == [1] and b.calls == [1]
    cached = CachedEmbedder(a, RedisCache(redis_url, prefix="t2:"))
    cached.embed([f"doc {i}" for i in range(10)])  # a batch of documents: straight to the model
    assert a.calls == [1, 10] and cached.cache.misses == 0
    assert cached.cache.clear() == 2


def test_redis_going_away_is_one_clear_error_without_the_password(tmp_path: Path) -> None:
    proc, url = _start(tmp_path)
    cache = RedisCache(url, prefix="t3:", timeout=2)
    embedder = CachedEmbedder(CountingEmbedder(), cache)
    embedder.embed(["q"])
    stop_process(proc)
    with pytest.raises(BackendUnavailable) as info:
        embedder.embed(["q"])
    message = str(info.value)
    password = url.split(":")[2].split("@")[0]
    assert "redis" in message and "PAI_MEMORY_REDIS_URL" in message and "\n" not in message
    assert url.split("@")[1].split("/")[0] in message and password not in message
