"""PAI Firewall MCP server: nftables changes that are planned, policy-checked, applied atomically, verified and rolled back on failure."""

__version__ = "0.1.0"
__all__ = ["__version__"]
