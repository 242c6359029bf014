"""The MemBrane MCP server: tool declarations only; logic lives in services."""

from __future__ import annotations

from typing import Any

from mcp.server import MCPServer

from pai_core.app import add_health_tool, create_server
from pai_membrane import __version__
from pai_membrane.settings import MembraneSettings

__all__ = ["build_server"]

INSTRUCTIONS = """Memory that compounds across sessions: a bi-temporal fact graph, a Markdown vault of learnings, and hybrid search."""


def _probe(settings: MembraneSettings) -> dict[str, Any]:
    db = settings.resolved_db_path
    return {
        "backend": f"sqlite:{db}",
        "configured": True,
        "details": {"db_exists": db.exists(), "vault": str(settings.resolved_vault_path)},
    }


def build_server(settings: MembraneSettings) -> MCPServer[Any]:
    """Compose the server from its settings (the composition root calls this)."""
    server = create_server(
        "membrane", version=__version__, instructions=INSTRUCTIONS, settings=settings
    )
    add_health_tool(server, version=__version__, settings=settings, probe=lambda: _probe(settings))
    return server
