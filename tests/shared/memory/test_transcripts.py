"""Which transcripts may be read: absolute .jsonl paths under the configured folders only."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pai_core.errors import InvalidInput, NotFound
from pai_core.memory.episodes.ingest import EpisodeStore
from pai_core.memory.fulltext import SearchIndex

SETTING = "PAI_TEST_TRANSCRIPT_ROOTS"
TURN: dict[str, object] = {
    "type": "user",
    "uuid": "t1",
    "sessionId": "s-1",
    "timestamp": "2026-11-20T09:00:00.000Z",
    "cwd": "/home/dev/projects/pai",
    "message": {"role": "user", "content": "Why does the secondary lag?"},
}


@pytest.fixture
def store(tmp_path: Path) -> EpisodeStore:
    return EpisodeStore(SearchIndex(tmp_path / "m.db"))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "claude" / "projects" / "-home-dev-projects-pai"
    folder.mkdir(parents=True)
    return tmp_path / "claude" / "projects"


def _transcript(path: Path, turn: dict[str, object] = TURN) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(turn) + "\n")
    return path


def _ingest(store: EpisodeStore, path: Path | str, root: Path) -> object:
    return store.ingest(Path(path), roots=[root], setting=SETTING)


def test_a_transcript_under_a_root_is_read(store: EpisodeStore, root: Path) -> None:
    path = _transcript(root / "-home-dev-projects-pai" / "s-1.jsonl")
    report = store.ingest(path, roots=[root], setting=SETTING)
    assert report.added == 1 and store.count() == 1


def test_outside_the_roots_is_refused_with_the_setting(
    store: EpisodeStore, root: Path, tmp_path: Path
) -> None:
    elsewhere = _transcript(tmp_path / "elsewhere" / "s-1.jsonl")
    with pytest.raises(InvalidInput, match="outside the folders transcripts are read from") as err:
        _ingest(store, elsewhere, root)
    assert err.value.details["field"] == "path"
    assert SETTING in str(err.value) and str(root) in str(err.value)
    # before anything about the file is looked at: a missing file outside reads the same
    with pytest.raises(InvalidInput, match="outside the folders"):
        _ingest(store, tmp_path / "elsewhere" / "missing.jsonl", root)
    with pytest.raises(InvalidInput, match=r"none is configured"):
        store.ingest(elsewhere, roots=[], setting=SETTING)
    assert store.count() == 0


def test_symlinks_and_dot_dot_out_of_a_root_are_refused(
    store: EpisodeStore, root: Path, tmp_path: Path
) -> None:
    secret = _transcript(tmp_path / "secret" / "s-1.jsonl")
    link = root / "-home-dev-projects-pai" / "s-2.jsonl"
    os.symlink(secret, link)
    with pytest.raises(InvalidInput, match="outside the folders"):
        _ingest(store, link, root)
    with pytest.raises(InvalidInput, match="outside the folders"):
        _ingest(store, f"{root}/../../secret/s-1.jsonl", root)
    assert store.count() == 0


@pytest.mark.parametrize("rel", ["s-1.jsonl", "./projects/s-1.jsonl", "../s-1.jsonl"])
def test_relative_paths_are_refused(store: EpisodeStore, root: Path, rel: str) -> None:
    with pytest.raises(InvalidInput, match="must be absolute") as err:
        _ingest(store, rel, root)
    assert str(root) in str(err.value)  # says where Claude Code's transcripts are


def test_only_jsonl_is_read(store: EpisodeStore, root: Path) -> None:
    notes = root / "-home-dev-projects-pai" / "notes.txt"
    notes.write_text("not a transcript")
    with pytest.raises(InvalidInput, match=r"\.jsonl file"):
        _ingest(store, notes, root)
    with pytest.raises(NotFound, match="no transcript"):
        _ingest(store, root / "-home-dev-projects-pai" / "gone.jsonl", root)
    (root / "-home-dev-projects-pai" / "dir.jsonl").mkdir()
    with pytest.raises(NotFound):
        _ingest(store, root / "-home-dev-projects-pai" / "dir.jsonl", root)


@pytest.mark.parametrize("name", ["a" * 300 + ".jsonl", "a/" * 50_000 + "b.jsonl"])
def test_paths_too_long_for_the_file_system_are_refused(
    store: EpisodeStore, root: Path, name: str
) -> None:
    with pytest.raises(
        InvalidInput, match="too long for the file system|longer than the file"
    ) as err:
        _ingest(store, root / name, root)
    assert err.value.details["field"] == "path" and len(str(err.value)) < 400


def test_times_outside_the_calendar_in_a_transcript_are_skipped(
    store: EpisodeStore, root: Path
) -> None:
    path = root / "-home-dev-projects-pai" / "s-3.jsonl"
    far = {**TURN, "uuid": "t9", "timestamp": "9999-12-31T23:59:59-23:59"}
    path.write_text(json.dumps(far) + "\n" + json.dumps(TURN) + "\n")
    report = store.ingest(path, roots=[root], setting=SETTING)
    assert (report.added, report.skipped_lines) == (1, 1)
