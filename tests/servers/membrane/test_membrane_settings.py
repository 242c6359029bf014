"""Where MemBrane may read transcripts from: Claude Code's projects directory unless configured."""

from __future__ import annotations

from pathlib import Path

import pytest

from pai_core.errors import ConfigError
from pai_core.settings import load_settings
from pai_membrane.settings import MembraneSettings


def _settings(tmp_path: Path) -> MembraneSettings:
    return load_settings(MembraneSettings, config_file=tmp_path / "none.toml")


def test_transcripts_are_read_from_claude_codes_projects_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CLAUDE_CONFIG_DIR", raising=False)
    monkeypatch.delenv("PAI_MEMBRANE_TRANSCRIPT_ROOTS", raising=False)
    assert _settings(tmp_path).transcript_roots == [tmp_path / "home" / ".claude" / "projects"]
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "cc"))
    assert _settings(tmp_path).transcript_roots == [tmp_path / "cc" / "projects"]


def test_transcript_roots_are_configurable_and_must_be_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PAI_MEMBRANE_TRANSCRIPT_ROOTS", '["/srv/transcripts", "~/more"]')
    roots = _settings(tmp_path).transcript_roots
    assert roots == [Path("/srv/transcripts"), tmp_path / "home" / "more"]
    monkeypatch.setenv("PAI_MEMBRANE_TRANSCRIPT_ROOTS", '["transcripts"]')
    with pytest.raises(ConfigError, match="transcript_roots must be absolute folders"):
        _settings(tmp_path)
