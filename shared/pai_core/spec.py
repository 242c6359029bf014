"""What a server package declares so `pai` can find, configure and start it.

Each server package exposes one :class:`ServerSpec` in the entry-point group ``pai.servers``.
Loading a spec is cheap (no MCP SDK, no backend): ``factory`` and ``doctor`` are import paths
resolved only when the server is really built or checked.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from mcp.server import MCPServer

    from pai_core.settings import ServerSettings

__all__ = ["ENTRY_POINT_GROUP", "Check", "ServerSpec", "discover_servers"]

ENTRY_POINT_GROUP = "pai.servers"


@dataclass(frozen=True, slots=True)
class Check:
    """One line of `pai doctor`: what was checked, whether it passed, and what to do if not."""

    name: str
    status: Literal["ok", "warn", "fail"]
    detail: str = ""


def _resolve(path: str) -> Any:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True, slots=True)
class ServerSpec:
    """A PAI server: its name, version, settings class and lazily imported factory."""

    name: str
    version: str
    description: str
    settings: str
    """Import path of the settings class, ``module:Class``."""
    factory: str
    """Import path of ``build(settings) -> MCPServer``, ``module:function``."""
    doctor: str | None = None
    """Import path of ``checks(settings) -> list[Check]`` for `pai doctor`."""
    commands: tuple[tuple[str, str, str], ...] = ()
    """Extra ``pai <name> <command>`` subcommands: ``(command, help, "module:function")``.
    The function takes ``(settings, argv: list[str])`` and returns an exit code."""

    def settings_cls(self) -> type[ServerSettings]:
        cls: type[ServerSettings] = _resolve(self.settings)
        return cls

    def build(self, settings: ServerSettings) -> MCPServer[Any]:
        factory: Callable[[ServerSettings], MCPServer[Any]] = _resolve(self.factory)
        return factory(settings)

    def run_command(self, command: str, settings: ServerSettings, argv: list[str]) -> int:
        for name, _help, path in self.commands:
            if name == command:
                fn: Callable[[ServerSettings, list[str]], int] = _resolve(path)
                return fn(settings, argv)
        raise KeyError(command)

    def checks(self, settings: ServerSettings) -> list[Check]:
        if self.doctor is None:
            return []
        fn: Callable[[ServerSettings], list[Check]] = _resolve(self.doctor)
        return fn(settings)


def discover_servers() -> dict[str, ServerSpec]:
    """Every installed server, by name (sorted)."""
    from importlib.metadata import entry_points  # not at import: a server's start skips it

    found: dict[str, ServerSpec] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        spec = ep.load()
        if isinstance(spec, ServerSpec):
            found[spec.name] = spec
    return dict(sorted(found.items()))
