"""Entry point of the DNS server: its spec for `pai` and its console script."""

from __future__ import annotations

import sys

from pai_core.spec import ServerSpec
from pai_dns import __version__

__all__ = ["SPEC", "main"]

SPEC = ServerSpec(
    name="dns",
    version=__version__,
    description="RFC 2136 + TSIG record changes: planned, policy-checked, one atomic UPDATE, verified on every authoritative server.",
    settings="pai_dns.settings:DnsSettings",
    factory="pai_dns.server:build_server",
    doctor="pai_dns.doctor:checks",
)


def main() -> None:
    """``pai-dns [--transport stdio|http|sse] [--host H] [--port P] [--config FILE]``."""
    from pai_core.main import console_main

    sys.exit(console_main(SPEC))
