"""Settings precedence (kwargs > env > file > defaults), masking, errors; log redaction."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import ClassVar

import pytest
from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from pai_core.errors import ConfigError
from pai_core.log import configure_logging, redact, register_secret
from pai_core.settings import ServerSettings, load_settings


class DemoSettings(ServerSettings):
    model_config = SettingsConfigDict(env_prefix="PAI_DEMO_", extra="ignore")
    server_name: ClassVar[str] = "demo"
    zone: str = "default.test"
    port: int = 53
    secret: SecretStr | None = None
    zones: list[str] = []


def test_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text('[pai]\nlog_level = "DEBUG"\nport = 1\n[demo]\nzone = "file.test"\nport = 2\n')
    monkeypatch.setenv("PAI_HOME", str(tmp_path / "home"))
    s = load_settings(DemoSettings, cfg)
    assert (s.zone, s.port, s.log_level) == ("file.test", 2, "DEBUG")
    assert s.data_path == tmp_path / "home" / "demo"
    monkeypatch.setenv("PAI_DEMO_PORT", "3")
    assert load_settings(DemoSettings, cfg).port == 3
    assert load_settings(DemoSettings, cfg, port=4).port == 4


def test_missing_file_is_fine(tmp_path: Path) -> None:
    assert load_settings(DemoSettings, tmp_path / "absent.toml").zone == "default.test"


def test_malformed_file_is_a_config_error(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text("[demo\nzone=")
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(DemoSettings, cfg)


def test_invalid_value_names_the_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAI_DEMO_PORT", "not-a-port")
    with pytest.raises(ConfigError) as info:
        load_settings(DemoSettings, tmp_path / "absent.toml")
    assert "port" in str(info.value) and "PAI_DEMO_" in str(info.value)


def test_public_view_masks_secrets(tmp_path: Path) -> None:
    s = load_settings(DemoSettings, tmp_path / "x.toml", secret="topsecretvalue", http_token="tok")
    view = s.public_view()
    assert view["secret"] == "***" and view["http_token"] == "***"
    assert "topsecretvalue" not in repr(view)


def test_redaction() -> None:
    register_secret("Zm9vYmFyYmF6cXV4")
    assert "Zm9vYmFyYmF6cXV4" not in redact("key=Zm9vYmFyYmF6cXV4 ok")
    assert redact("password=hunter2 user=bob") == "password=*** user=bob"
    assert redact('{"token": "abc.def"}') == '{"token": "***"}'
    assert "Bearer" in redact("Authorization: Bearer abcdef") or "***" in redact(
        "Authorization: Bearer abcdef"
    )
    assert "abcdef" not in redact("Authorization: Bearer abcdef")


def test_logs_go_to_stderr_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO")
    register_secret("very-secret-token-123")
    logging.getLogger("pai.test").info("connecting with very-secret-token-123")
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "very-secret-token-123" not in captured.err and "***" in captured.err


def test_list_settings_accept_json_or_commas(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAI_DEMO_ZONES", '["a.test", "b.test"]')
    assert load_settings(DemoSettings, tmp_path / "x.toml").zones == ["a.test", "b.test"]
    monkeypatch.setenv("PAI_DEMO_ZONES", "a.test, b.test,")
    assert load_settings(DemoSettings, tmp_path / "x.toml").zones == ["a.test", "b.test"]
    monkeypatch.setenv("PAI_DEMO_ZONES", "[broken")
    with pytest.raises(ConfigError, match="zones"):
        load_settings(DemoSettings, tmp_path / "x.toml")
