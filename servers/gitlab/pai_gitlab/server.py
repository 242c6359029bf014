"""The GitLab MCP server: tool declarations only; logic lives in services."""

from __future__ import annotations

from typing import Any

from mcp.server import MCPServer

from pai_core.app import add_health_tool, create_server
from pai_gitlab import __version__
from pai_gitlab.settings import GitlabSettings

__all__ = ["build_server"]

INSTRUCTIONS = """GitLab issues, merge requests, commits and pipelines, linked into memory."""


def _probe(settings: GitlabSettings) -> dict[str, Any]:
    problems = []
    if not settings.url:
        problems.append("PAI_GITLAB_URL is not set")
    if not settings.token:
        problems.append("PAI_GITLAB_TOKEN is not set")
    return {
        "backend": f"gitlab:{settings.url}" if settings.url else "gitlab (unset)",
        "configured": not problems,
        "problems": problems,
    }


def build_server(settings: GitlabSettings) -> MCPServer[Any]:
    """Compose the server from its settings (the composition root calls this)."""
    server = create_server(
        "gitlab", version=__version__, instructions=INSTRUCTIONS, settings=settings
    )
    add_health_tool(server, version=__version__, settings=settings, probe=lambda: _probe(settings))
    return server
