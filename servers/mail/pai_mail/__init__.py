"""PAI Mail MCP server: Dovecot/Postfix mailbox provisioning, proven by IMAP login and an SMTP round trip."""

__version__ = "0.1.0"
__all__ = ["__version__"]
