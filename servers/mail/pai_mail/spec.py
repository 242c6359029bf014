"""Entry point of the Mail server: its spec for `pai` and its console script."""

from __future__ import annotations

import sys

from pai_core.spec import ServerSpec
from pai_mail import __version__

__all__ = ["SPEC", "main"]

SPEC = ServerSpec(
    name="mail",
    version=__version__,
    description="Dovecot/Postfix mailbox provisioning, proven by IMAP login and an SMTP round trip.",
    settings="pai_mail.settings:MailSettings",
    factory="pai_mail.server:build_server",
)


def main() -> None:
    """``pai-mail [--transport stdio|http|sse] [--host H] [--port P] [--config FILE]``."""
    from pai_core.main import console_main

    sys.exit(console_main(SPEC))
