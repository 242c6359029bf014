"""Entry point of the GitLab server: its spec for `pai` and its console script."""

from __future__ import annotations

import sys

from pai_core.spec import ServerSpec
from pai_gitlab import __version__

__all__ = ["SPEC", "main"]

SPEC = ServerSpec(
    name="gitlab",
    version=__version__,
    description="GitLab issues, merge requests, commits and pipelines, linked into memory.",
    settings="pai_gitlab.settings:GitlabSettings",
    factory="pai_gitlab.server:build_server",
    doctor="pai_gitlab.doctor:checks",
)


def main() -> None:
    """``pai-gitlab [--transport stdio|http|sse] [--host H] [--port P] [--config FILE]``."""
    from pai_core.main import console_main

    sys.exit(console_main(SPEC))
