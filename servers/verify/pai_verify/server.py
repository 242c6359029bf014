"""The Verify MCP server: tool declarations only; logic lives in services."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mcp.server import MCPServer

from pai_core.app import add_health_tool, create_server
from pai_verify import __version__
from pai_verify.settings import VerifySettings

__all__ = ["build_server"]

INSTRUCTIONS = """HTTP checks, screenshots, image counts and a pass/fail deployment verdict."""


def _probe(settings: VerifySettings) -> dict[str, Any]:
    chromium = Path(settings.chromium_path)
    ok = chromium.exists()
    return {
        "backend": "httpx+chromium",
        "configured": True,
        "status": "ok" if ok else "degraded",
        "problems": []
        if ok
        else [f"{chromium} not found: browser tools unavailable (apt-get install chromium)"],
        "details": {"chromium": str(chromium)},
    }


def build_server(settings: VerifySettings) -> MCPServer[Any]:
    """Compose the server from its settings (the composition root calls this)."""
    server = create_server(
        "verify", version=__version__, instructions=INSTRUCTIONS, settings=settings
    )
    add_health_tool(server, version=__version__, settings=settings, probe=lambda: _probe(settings))
    return server
