"""Entry point of the Firewall server: its spec for `pai` and its console script."""

from __future__ import annotations

import sys

from pai_core.spec import ServerSpec
from pai_firewall import __version__

__all__ = ["SPEC", "main"]

SPEC = ServerSpec(
    name="firewall",
    version=__version__,
    description="nftables changes that are planned, policy-checked, applied atomically, verified and rolled back on failure.",
    settings="pai_firewall.settings:FirewallSettings",
    factory="pai_firewall.server:build_server",
)


def main() -> None:
    """``pai-firewall [--transport stdio|http|sse] [--host H] [--port P] [--config FILE]``."""
    from pai_core.main import console_main

    sys.exit(console_main(SPEC))
