"""The Mail MCP server: tool declarations only; logic lives in services."""

from __future__ import annotations

from typing import Any

from mcp.server import MCPServer

from pai_core.app import add_health_tool, create_server
from pai_mail import __version__
from pai_mail.settings import MailSettings

__all__ = ["build_server"]

INSTRUCTIONS = (
    """Dovecot/Postfix mailbox provisioning, proven by IMAP login and an SMTP round trip."""
)


def _probe(settings: MailSettings) -> dict[str, Any]:
    problems = []
    if not settings.domains:
        problems.append("no mail domains: set PAI_MAIL_DOMAINS")
    if not settings.passwd_file:
        problems.append("no passwd-file: set PAI_MAIL_PASSWD_FILE")
    return {
        "backend": f"dovecot-passwd-file:{settings.passwd_file}"
        if settings.passwd_file
        else "dovecot (unset)",
        "configured": not problems,
        "problems": problems,
        "details": {
            "imap": f"{settings.imap_host}:{settings.imap_port}",
            "smtp": f"{settings.smtp_host}:{settings.smtp_port}",
        },
    }


def build_server(settings: MailSettings) -> MCPServer[Any]:
    """Compose the server from its settings (the composition root calls this)."""
    server = create_server(
        "mail", version=__version__, instructions=INSTRUCTIONS, settings=settings
    )
    add_health_tool(server, version=__version__, settings=settings, probe=lambda: _probe(settings))
    return server
