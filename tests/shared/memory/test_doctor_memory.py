"""`pai doctor`'s memory lines: backends in use (addresses without secrets), whether the derived
stores agree with their sources, and one line per unreachable backend naming its setting."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pai_core.cli import app
from pai_core.memory.backends import memory_checks
from pai_core.memory.graph.service import GraphService
from pai_core.memory.graph.sqlite_store import SqliteGraphStore
from pai_core.settings import MemorySettings
from tests.conftest import free_port, stop_process
from tests.servers.membrane.test_redis_cache import _start
from tests.shared.memory.facts import fact_in


def _lines(settings: MemorySettings) -> dict[str, tuple[str, str]]:
    return {c.name: (c.status, c.detail) for c in memory_checks(settings)}


def test_backends_in_use_and_whether_they_agree(tmp_path: Path) -> None:
    settings = MemorySettings(db_path=tmp_path / "m.db", vault_path=tmp_path / "v")
    assert "no memory yet" in _lines(settings)["memory graph"][1]
    store = SqliteGraphStore(settings.db_file)
    GraphService(store).remember(fact_in({"subject": "a", "predicate": "USES", "object": "b"}))
    store.close()
    lines = _lines(settings)
    assert lines["memory graph"] == ("ok", f"sqlite:{settings.db_file}: 1 facts")
    assert (
        lines["memory full text"][0] == "warn"
        and "1 facts are not in the full-text" in (lines["memory full text"][1])
    )
    assert lines["memory cache"] == ("ok", "in-process")
    local = settings.model_copy(update={"vector_backend": "qdrant"})
    lines = _lines(local)
    assert "qdrant local mode" in lines["memory vectors"][1]
    assert lines["memory vectors vs documents"] == ("ok", "0 vectors for 0 documents")


def test_unreachable_qdrant_and_redis_are_one_line_naming_the_setting(tmp_path: Path) -> None:
    proc, url = _start(tmp_path)
    password = url.split(":")[2].split("@")[0]
    port = free_port()
    settings = MemorySettings(
        db_path=tmp_path / "m.db",
        vault_path=tmp_path / "v",
        vector_backend="qdrant",
        qdrant_url=f"http://127.0.0.1:{port}",
        qdrant_api_key="q-s3cret",
        redis_url=url,
    )
    try:
        lines = _lines(settings)
        assert lines["memory cache"] == (
            "ok",
            f"redis at redis://127.0.0.1:{url.rsplit(':')[-1][:-2]}",
        )
    finally:
        stop_process(proc)
    lines = _lines(settings)
    status, detail = lines["memory vectors"]
    assert status == "fail" and f"qdrant at http://127.0.0.1:{port}" in detail
    assert "PAI_MEMORY_QDRANT_URL" in detail
    status, detail = lines["memory cache"]
    assert status == "fail" and "PAI_MEMORY_REDIS_URL" in detail and "redis://127.0.0.1:" in detail
    text = repr(memory_checks(settings))
    assert password not in text and "q-s3cret" not in text and "\n" not in text


def test_doctor_prints_the_memory_section(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("PAI_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("PAI_HOME", str(tmp_path))
    monkeypatch.setenv("PAI_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("PAI_MEMORY_REDIS_URL", f"redis://:pw-s3cret@127.0.0.1:{free_port()}/0")
    result = CliRunner().invoke(app, ["doctor", "verify"])
    assert result.exit_code == 1
    assert "\nmemory\n" in result.output and "memory graph: sqlite:" in result.output
    assert "✘ memory cache: cache backend redis at redis://127.0.0.1:" in result.output
    assert "pw-s3cret" not in result.output
