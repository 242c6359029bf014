"""Entry point of the MemBrane server: its spec for `pai` and its console script."""

from __future__ import annotations

import sys

from pai_core.spec import ServerSpec
from pai_membrane import __version__

__all__ = ["SPEC", "main"]

SPEC = ServerSpec(
    name="membrane",
    version=__version__,
    description="Memory that compounds across sessions: a bi-temporal fact graph, a Markdown vault of learnings, and hybrid search.",
    settings="pai_membrane.settings:MembraneSettings",
    factory="pai_membrane.server:build_server",
    commands=(
        (
            "reindex",
            "Rebuild the search indexes from the graph, vault and episodes.",
            "pai_membrane.cli:reindex",
        ),
        (
            "capture",
            "Ingest the transcript named by a Claude Code hook's JSON on stdin.",
            "pai_membrane.cli:capture",
        ),
    ),
)


def main() -> None:
    """``pai-membrane [--transport stdio|http|sse] [--host H] [--port P] [--config FILE]``."""
    from pai_core.main import console_main

    sys.exit(console_main(SPEC))
