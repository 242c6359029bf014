"""`pai membrane capture` from a Claude Code SessionEnd hook, and `pai membrane reindex`."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT, VENV_BIN

DATA = Path(__file__).parent / "data"
PAI = str(VENV_BIN / "pai")


def _pai(args: list[str], env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PAI, "membrane", *args], input=stdin, env=env, capture_output=True, text=True, timeout=300
    )


def test_capture_hook_and_reindex(pai_env: dict[str, str], tmp_path: Path) -> None:
    env = {**pai_env, "PAI_MEMBRANE_EMBEDDINGS": "false"}
    env.pop("CLAUDE_CONFIG_DIR", None)
    # where Claude Code writes it, and so where its SessionEnd hook's transcript_path points
    projects = Path(env["HOME"]) / ".claude" / "projects"
    transcript = projects / "-home-dev-projects-pai" / "s-42.jsonl"
    transcript.parent.mkdir(parents=True)
    shutil.copy(DATA / "session.jsonl", transcript)
    hook = {
        "session_id": "s-42",
        "transcript_path": str(transcript),
        "cwd": str(tmp_path),
        "hook_event_name": "SessionEnd",
        "reason": "exit",
    }
    first = _pai(["capture"], env, json.dumps(hook))
    assert first.returncode == 0, first.stderr
    assert "captured 4 new turn(s) of session s-42" in first.stderr
    again = _pai(["capture"], env, json.dumps(hook))
    assert "captured 0 new turn(s)" in again.stderr
    bad = _pai(["capture"], env, "not json")
    assert bad.returncode == 1 and "not JSON" in bad.stderr
    missing = _pai(["capture"], env, json.dumps({"transcript_path": str(projects / "no.jsonl")}))
    assert missing.returncode == 1 and "no transcript" in missing.stderr
    outside = tmp_path / "s-43.jsonl"
    shutil.copy(DATA / "session.jsonl", outside)
    refused = _pai(["capture"], env, json.dumps({"transcript_path": str(outside)}))
    assert refused.returncode == 1 and "outside the folders" in refused.stderr
    assert "PAI_MEMBRANE_TRANSCRIPT_ROOTS" in refused.stderr
    # Claude Code with CLAUDE_CONFIG_DIR writes its transcripts there; the hook follows it
    relocated = tmp_path / "claude-config" / "projects" / "-srv" / "s-44.jsonl"
    relocated.parent.mkdir(parents=True)
    shutil.copy(DATA / "session.jsonl", relocated)
    moved = _pai(
        ["capture"],
        {**env, "CLAUDE_CONFIG_DIR": str(tmp_path / "claude-config")},
        json.dumps({"transcript_path": str(relocated)}),
    )
    assert moved.returncode == 0 and "captured 0 new turn(s)" in moved.stderr  # same turn ids
    vault = Path(env["PAI_HOME"]) / "memory" / "vault" / "3-Resources"
    vault.mkdir(parents=True)
    (vault / "note.md").write_text("# Note\n\nzone transfer tips")
    re = _pai(["reindex"], env)
    assert re.returncode == 0, re.stderr
    assert "reindexed: 1 notes, 4 episodes" in re.stderr


def test_hook_snippet_calls_the_capture_command() -> None:
    config = json.loads((ROOT / "claude_config" / "hooks" / "session_end.json").read_text())
    [entry] = config["hooks"]["SessionEnd"]
    assert entry["hooks"][0]["command"] == "pai membrane capture"


def test_reindex_vectors_builds_qdrant_from_the_stored_vectors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`pai memory migrate --to neo4j+qdrant` runs this: no model, the vectors in SQLite."""
    import numpy as np

    from pai_core.memory.fulltext import SearchIndex
    from pai_core.settings import MemorySettings
    from pai_membrane.cli import reindex
    from pai_membrane.settings import MembraneSettings

    memory = MemorySettings(db_path=tmp_path / "m.db", vault_path=tmp_path / "vault")
    index = SearchIndex(memory.db_file)
    with index.write() as w:
        for i in range(5):
            index.upsert(w, "note", f"d{i}", f"t{i}", f"b{i}", at=float(i))
        w.executemany(
            "INSERT INTO s_vectors VALUES (?, ?, ?)",
            [
                (d, f"h{d}", np.ones(8, np.float32).tobytes())
                for (d,) in w.execute("SELECT id FROM s_docs").fetchall()
            ],
        )
    index.db.close()
    settings = MembraneSettings(embeddings=False, memory=memory)
    assert reindex(settings, ["--vectors"]) == 0
    assert "vector_backend is not 'qdrant'" in capsys.readouterr().err
    settings.memory = memory.model_copy(update={"vector_backend": "qdrant"})
    assert reindex(settings, ["--vectors"]) == 0
    assert (
        "vectors: 5 in qdrant::memory:/pai_memory, the same as in SQLite" in capsys.readouterr().err
    )
    assert reindex(settings, ["--vector"]) == 2
    assert "unknown option" in capsys.readouterr().err
