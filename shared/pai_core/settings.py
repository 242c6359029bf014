"""Settings shared by every server: pydantic-settings with ``PAI_<NAME>_`` env vars and one file.

Precedence, highest first: keyword arguments, environment (``PAI_<NAME>_<FIELD>``), the config
file (table ``[<name>]`` over table ``[pai]``), defaults. The file is
``$PAI_CONFIG`` or ``~/.config/pai/config.toml`` and is optional. Settings are read only at the
composition root (:func:`load_settings`) and passed down; tools and services never read the
environment.
"""

from __future__ import annotations

import json
import os
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from pai_core.errors import ConfigError

__all__ = [
    "MemorySettings",
    "ServerSettings",
    "default_config_file",
    "load_settings",
    "pai_home",
]

S = TypeVar("S", bound="ServerSettings")
_config_file: ContextVar[Path | None] = ContextVar("pai_config_file", default=None)


def pai_home() -> Path:
    """Where PAI keeps its data: ``$PAI_HOME``, else ``$XDG_DATA_HOME/pai``, else ~/.local/share."""
    if home := os.environ.get("PAI_HOME"):
        return Path(home).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg).expanduser() / "pai"


def default_config_file() -> Path:
    """``$PAI_CONFIG`` or ``~/.config/pai/config.toml`` (it need not exist)."""
    if path := os.environ.get("PAI_CONFIG"):
        return Path(path).expanduser()
    xdg = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(xdg).expanduser() / "pai" / "config.toml"


def read_config_file(path: Path | None) -> dict[str, Any]:
    """Parse the config file; a missing file is empty, a malformed one is a ``ConfigError``."""
    if path is None or not path.exists():
        return {}
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}", path=str(path)) from exc


class _ConfigFileSource(PydanticBaseSettingsSource):
    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        name = getattr(settings_cls, "server_name", "")
        data = read_config_file(_config_file.get())
        common = data.get("pai", {})
        own = data.get(name, {})
        if not isinstance(common, dict) or not isinstance(own, dict):
            raise ConfigError("config tables [pai] and [<server>] must be tables")
        self._values = {**common, **own}

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        fields = self.settings_cls.model_fields
        return {k: v for k, v in self._values.items() if k in fields}


class _PaiSettings(BaseSettings):
    """What every PAI settings class shares: the sources and list parsing."""

    model_config = SettingsConfigDict(
        extra="ignore", env_nested_delimiter="__", enable_decoding=False
    )
    server_name: ClassVar[str] = "pai"

    @field_validator("*", mode="before")
    @classmethod
    def _lists_from_env(cls, value: Any, info: ValidationInfo) -> Any:
        """Accept list settings from the environment as JSON or as comma-separated text."""
        if not isinstance(value, str) or info.field_name is None:
            return value
        annotation = str(cls.model_fields[info.field_name].annotation)
        if not annotation.startswith(("list", "typing.List", "set", "tuple")):
            return value
        text = value.strip()
        if text.startswith("["):
            try:
                return json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"not a JSON list: {exc}") from exc
        return [part.strip() for part in text.split(",") if part.strip()]

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _ConfigFileSource(settings_cls), file_secret_settings)


class MemorySettings(_PaiSettings):
    """Where the shared memory lives: the one place every server resolves it.

    Env ``PAI_MEMORY_*`` or the config file's ``[memory]`` table. Default: ``<PAI_HOME>/memory/``
    (``memory.db`` and ``vault/``); a memory kept by earlier versions in
    ``<PAI_HOME>/membrane/`` is used where no new one exists yet.
    """

    model_config = SettingsConfigDict(env_prefix="PAI_MEMORY_", extra="ignore")
    server_name: ClassVar[str] = "memory"

    db_path: Path | None = Field(
        None,
        description="SQLite file of facts, full text and episodes (default: "
        "<PAI_HOME>/memory/memory.db).",
    )
    vault_path: Path | None = Field(
        None, description="Obsidian/PARA vault of notes (default: <PAI_HOME>/memory/vault)."
    )
    para_folders: list[str] = Field(
        default_factory=lambda: ["1-Projects", "2-Areas", "3-Resources", "4-Archives"],
        description="PARA folders of the vault (projects, areas, resources, archives).",
    )
    graph_backend: Literal["sqlite", "neo4j"] = Field(
        "sqlite",
        description="Where the fact graph lives: 'sqlite' (embedded, in db_path) or 'neo4j' "
        "(a Neo4j 5 server, cluster or Aura, or any Bolt server speaking Neo4j's Cypher).",
    )
    neo4j_uri: str = Field(
        "bolt://127.0.0.1:7687",
        description="Bolt address of the graph server (bolt://, neo4j://, neo4j+s://, bolt+s://).",
    )
    neo4j_user: str = Field("neo4j", description="User of the graph server.")
    neo4j_password: SecretStr | None = Field(None, description="Password of the graph server.")
    neo4j_database: str | None = Field(
        None, description="Database on the graph server (default: the server's default)."
    )
    neo4j_pool_size: int = Field(
        50, ge=1, le=1000, description="Most connections kept open to the graph server."
    )
    neo4j_timeout: float = Field(
        15.0, gt=0, le=600, description="Seconds to connect, or to wait for a pooled connection."
    )
    vector_backend: Literal["numpy", "qdrant"] = Field(
        "numpy",
        description="Where search's vectors are searched: 'numpy' (in memory, from db_path) or "
        "'qdrant' (a collection rebuilt from db_path when missing).",
    )
    qdrant_url: str | None = Field(
        None, description="Qdrant server URL (default: qdrant-client's in-process local mode)."
    )
    qdrant_api_key: SecretStr | None = Field(None, description="API key of the Qdrant server.")
    qdrant_collection: str = Field("pai_memory", description="Qdrant collection of the vectors.")
    redis_url: SecretStr | None = Field(
        None,
        description="Redis URL caching query embeddings and hot search results across "
        "processes (default: off, an in-process cache only).",
    )
    redis_ttl_s: int = Field(
        7 * 86400, ge=1, description="Seconds a cached query embedding is kept in Redis."
    )
    redis_result_ttl_s: int = Field(
        300,
        ge=0,
        description="Seconds a search's results are kept in Redis (with redis_url; every write "
        "through the memory invalidates them at once); 0: results are not cached.",
    )

    @model_validator(mode="after")
    def _fill_paths(self) -> MemorySettings:
        home = pai_home()
        if self.db_path is None:
            new, old = home / "memory" / "memory.db", home / "membrane" / "membrane.db"
            self.db_path = old if old.exists() and not new.exists() else new
        if self.vault_path is None:
            new, old = home / "memory" / "vault", home / "membrane" / "vault"
            self.vault_path = old if old.is_dir() and not new.exists() else new
        self.db_path = self.db_path.expanduser()
        self.vault_path = self.vault_path.expanduser()
        return self

    @property
    def db_file(self) -> Path:
        """``db_path``, always set after validation."""
        assert self.db_path is not None
        return self.db_path

    @property
    def vault_dir(self) -> Path:
        """``vault_path``, always set after validation."""
        assert self.vault_path is not None
        return self.vault_path


class ServerSettings(_PaiSettings):
    """Fields every server has. Subclasses set ``server_name`` and ``env_prefix``."""

    log_level: str = Field("INFO", description="Logging level (stderr only).")
    data_dir: Path | None = Field(None, description="Where this server keeps its data.")
    audit_log: Path | None = Field(None, description="Shared append-only audit log (JSON lines).")
    http_token: SecretStr | None = Field(
        None, description="Bearer token required on HTTP transports (required off loopback)."
    )
    allowed_origins: list[str] = Field(
        default_factory=list, description="Extra Origin values allowed on HTTP transports."
    )
    remember: bool = Field(
        True, description="Record verified changes as facts in the shared memory."
    )
    memory: MemorySettings = Field(
        default_factory=lambda: MemorySettings(),
        description="Where the shared memory lives (env PAI_MEMORY_*, table [memory]).",
    )

    @model_validator(mode="after")
    def _fill_paths(self) -> ServerSettings:
        if self.data_dir is None:
            self.data_dir = pai_home() / self.server_name
        if self.audit_log is None:
            self.audit_log = pai_home() / "audit.jsonl"
        return self

    @property
    def data_path(self) -> Path:
        """``data_dir``, always set after validation."""
        assert self.data_dir is not None
        return self.data_dir

    def public_view(self) -> dict[str, Any]:
        """Settings as JSON-safe values with every secret masked (for health and doctor)."""
        out: dict[str, Any] = {}
        for key, value in self.model_dump(mode="json").items():
            field_value = getattr(self, key)
            if isinstance(field_value, SecretStr):
                out[key] = "***" if field_value.get_secret_value() else None
            elif any(s in key for s in ("secret", "password", "token")) and value:
                out[key] = "***"
            else:
                out[key] = value
        return out


def load_settings(cls: type[S], config_file: Path | None = None, **overrides: Any) -> S:
    """Build settings at the composition root: file, then env, then ``overrides``."""
    token = _config_file.set(config_file if config_file is not None else default_config_file())
    try:
        from pydantic import ValidationError

        try:
            return cls(**overrides)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
            )
            prefix = cls.model_config.get("env_prefix", "")
            raise ConfigError(
                f"invalid {cls.server_name} settings: {problems}",
                hint=f"Fix the {prefix}* environment variables or the [{cls.server_name}] "
                "table of the config file.",
            ) from exc
    finally:
        _config_file.reset(token)
