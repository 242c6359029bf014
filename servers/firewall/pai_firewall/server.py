"""The Firewall MCP server: tool declarations only; logic lives in services."""

from __future__ import annotations

import shutil
from typing import Any

from mcp.server import MCPServer

from pai_core.app import add_health_tool, create_server
from pai_firewall import __version__
from pai_firewall.settings import FirewallSettings

__all__ = ["build_server"]

INSTRUCTIONS = """nftables changes that are planned, policy-checked, applied atomically, verified and rolled back on failure."""


def _probe(settings: FirewallSettings) -> dict[str, Any]:
    nft = shutil.which(settings.nft_binary)
    return {
        "backend": f"nftables:table inet {settings.table}",
        "configured": nft is not None,
        "problems": [] if nft else [f"{settings.nft_binary} not found: apt-get install nftables"],
        "details": {"nft": nft, "netns": settings.netns},
    }


def build_server(settings: FirewallSettings) -> MCPServer[Any]:
    """Compose the server from its settings (the composition root calls this)."""
    server = create_server(
        "firewall", version=__version__, instructions=INSTRUCTIONS, settings=settings
    )
    add_health_tool(server, version=__version__, settings=settings, probe=lambda: _probe(settings))
    return server
