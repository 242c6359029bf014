"""PAI DNS MCP server: RFC 2136 + TSIG record changes: planned, policy-checked, one atomic UPDATE, verified on every authoritative server."""

__version__ = "0.1.0"
__all__ = ["__version__"]
