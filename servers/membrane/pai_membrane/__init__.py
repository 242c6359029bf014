"""PAI MemBrane MCP server: Memory that compounds across sessions: a bi-temporal fact graph, a Markdown vault of learnings, and hybrid search."""

__version__ = "0.1.0"
__all__ = ["__version__"]
