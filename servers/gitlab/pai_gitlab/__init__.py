"""PAI GitLab MCP server: GitLab issues, merge requests, commits and pipelines, linked into memory."""

__version__ = "0.1.0"
__all__ = ["__version__"]
