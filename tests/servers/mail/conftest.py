"""Fixtures of the mail tests: one real Dovecot + Postfix stack per session, a service per test.

The stack (see :mod:`tests.servers.mail.mailservers`) is shared: every test uses its own
addresses (:func:`fresh`), so tests never see each other's accounts.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pai_core.settings import load_settings
from pai_mail.compose import build_service
from pai_mail.service import MailService
from pai_mail.settings import MailSettings
from tests.conftest import require_binary
from tests.servers.mail.mailservers import DOMAIN, MailStack, start_stack


def fresh(prefix: str = "u") -> str:
    """A new address in the test domain."""
    return f"{prefix}-{secrets.token_hex(4)}@{DOMAIN}"


@pytest.fixture(scope="session")
def mail_stack() -> Iterator[MailStack]:
    require_binary("dovecot", package="dovecot-imapd dovecot-lmtpd")
    require_binary("master", "postfix", package="postfix")
    directory = Path(tempfile.mkdtemp(prefix="pai-mail-test-"))
    stack = start_stack(directory)
    yield stack
    stack.stop()
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def mail_settings(mail_stack: MailStack, tmp_path: Path) -> MailSettings:
    return load_settings(
        MailSettings,
        tmp_path / "none.toml",
        **mail_stack.settings(data_dir=tmp_path / "data", audit_log=tmp_path / "audit.jsonl"),
    )


@pytest.fixture
def service(mail_settings: MailSettings) -> MailService:
    return build_service(mail_settings)


@pytest.fixture
def password_file(tmp_path: Path) -> Iterator[object]:
    """``password_file(password) -> path``: a private file holding the password."""

    def write(password: str) -> str:
        path = tmp_path / f"pw-{secrets.token_hex(4)}"
        path.write_text(password + "\n")
        path.chmod(0o600)
        return str(path)

    yield write
