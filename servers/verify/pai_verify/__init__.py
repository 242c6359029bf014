"""PAI Verify MCP server: HTTP checks, screenshots, image counts and a pass/fail deployment verdict."""

__version__ = "0.1.0"
__all__ = ["__version__"]
