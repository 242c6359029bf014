"""The DNS MCP server: tool declarations only; logic lives in services."""

from __future__ import annotations

from typing import Any

from mcp.server import MCPServer

from pai_core.app import add_health_tool, create_server
from pai_dns import __version__
from pai_dns.settings import DnsSettings

__all__ = ["build_server"]

INSTRUCTIONS = """RFC 2136 + TSIG record changes: planned, policy-checked, one atomic UPDATE, verified on every authoritative server."""


def _probe(settings: DnsSettings) -> dict[str, Any]:
    problems = []
    if not settings.zones:
        problems.append("no zones: set PAI_DNS_ZONES")
    if not settings.server:
        problems.append("no primary server: set PAI_DNS_SERVER")
    if not settings.tsig_key_name or not (settings.tsig_secret or settings.tsig_secret_file):
        problems.append("no TSIG key: set PAI_DNS_TSIG_KEY_NAME and PAI_DNS_TSIG_SECRET(_FILE)")
    return {
        "backend": f"rfc2136:{settings.server}:{settings.port}"
        if settings.server
        else "rfc2136 (unset)",
        "configured": not problems,
        "problems": problems,
        "details": {"zones": settings.zones},
    }


def build_server(settings: DnsSettings) -> MCPServer[Any]:
    """Compose the server from its settings (the composition root calls this)."""
    server = create_server("dns", version=__version__, instructions=INSTRUCTIONS, settings=settings)
    add_health_tool(server, version=__version__, settings=settings, probe=lambda: _probe(settings))
    return server
