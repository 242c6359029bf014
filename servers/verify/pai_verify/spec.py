"""Entry point of the Verify server: its spec for `pai` and its console script."""

from __future__ import annotations

import sys

from pai_core.spec import ServerSpec
from pai_verify import __version__

__all__ = ["SPEC", "main"]

SPEC = ServerSpec(
    name="verify",
    version=__version__,
    description="HTTP checks, screenshots, image counts and a pass/fail deployment verdict.",
    settings="pai_verify.settings:VerifySettings",
    factory="pai_verify.server:build_server",
)


def main() -> None:
    """``pai-verify [--transport stdio|http|sse] [--host H] [--port P] [--config FILE]``."""
    from pai_core.main import console_main

    sys.exit(console_main(SPEC))
