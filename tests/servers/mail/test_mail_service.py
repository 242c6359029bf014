"""The mail service against a real Dovecot + Postfix: create → log in → send → receive, rollback
when delivery is broken, concurrent creations, foreign lines kept, archives, and no password
anywhere it must not be."""

from __future__ import annotations

import imaplib
import logging
import os
import signal
import smtplib
import subprocess
import sys
import tarfile
import time
from email.message import EmailMessage
from pathlib import Path

import pytest

from pai_core.audit import AuditLog
from pai_core.errors import Conflict, NotFound, VerificationFailed
from pai_core.memory import open_memory
from pai_mail.service import MailService
from pai_mail.settings import MailSettings
from tests.servers.mail.conftest import fresh
from tests.servers.mail.mailservers import MailStack


def imap_login(stack: MailStack, address: str, password: str) -> imaplib.IMAP4:
    conn = imaplib.IMAP4("127.0.0.1", stack.imap_port, timeout=10)
    try:
        conn.login(address, password)
    except imaplib.IMAP4.error:
        conn.shutdown()
        raise
    return conn


def send(stack: MailStack, login: str, password: str, to: str, subject: str) -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = login, to, subject
    msg.set_content("hello\n")
    with smtplib.SMTP("127.0.0.1", stack.submission_port, timeout=10) as smtp:
        smtp.login(login, password)
        smtp.send_message(msg)


def wait_for_subject(conn: imaplib.IMAP4, subject: str, timeout: float = 10) -> bytes:
    conn.select("INBOX")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        conn.noop()
        typ, data = conn.search(None, "SUBJECT", f'"{subject}"')
        if data and data[0]:
            return bytes(data[0])
        time.sleep(0.05)
    raise AssertionError(f"no message {subject!r} arrived")


def test_create_log_in_send_receive_and_remember(
    service: MailService,
    mail_stack: MailStack,
    mail_settings: MailSettings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    address = fresh("alice")
    result = service.create_account(address.upper(), quota="256M", display_name="Alice Liddell")
    password = result.password
    assert password and result.password_source == "generated"
    assert [c.step for c in result.proof] == [
        "dovecot-loaded",
        "imap-login",
        "smtp-auth",
        "send",
        "delivery",
        "cleanup",
    ]
    assert all(c.ok for c in result.proof)
    assert result.account.address == address and result.account.quota_mb == 256
    # The proof's test message is gone; the account works for a real client.
    conn = imap_login(mail_stack, address, password)
    conn.select("INBOX")
    assert conn.search(None, "ALL")[1] == [b""]
    send(mail_stack, address, password, address, "first real mail")
    wait_for_subject(conn, "first real mail")
    quota = conn.getquotaroot("INBOX")[1]
    assert b"262144" in quota[1][0]  # 256 MiB in KiB, as Dovecot enforces it
    conn.logout()
    # Audited and remembered, with the audit entry as the source of the facts.
    entries = list(AuditLog(mail_settings.audit_log).entries())  # type: ignore[arg-type]
    assert entries[-1]["action"] == "mail.create_account" and entries[-1]["result"] == "created"
    assert result.memory.remembered and result.memory.source == f"mail:{result.audit_id}"
    entity = open_memory(mail_settings.memory).graph.get_entity(address)
    facts = {f.predicate: (f.object or f.value) for f in entity.outgoing}
    assert facts["IS_MAIL_ACCOUNT_ON"] == "example.test"
    assert facts["HAS_QUOTA"] == "256 MiB" and facts["HAS_STATUS"] == "active"
    # The password is nowhere but in the result: not in logs, audit, memory, or the passwd-file.
    assert password not in caplog.text
    assert password not in Path(mail_settings.audit_log).read_text()  # type: ignore[arg-type]
    assert password not in mail_stack.passwd_file.read_text()
    for path in mail_settings.memory.db_file.parent.rglob("*"):
        if path.is_file():
            assert password.encode() not in path.read_bytes(), path
    listing = service.list_accounts()
    assert address in [a.address for a in listing.accounts]
    assert "SHA512" not in listing.model_dump_json()


def test_broken_delivery_makes_creation_fail_and_roll_back(
    service: MailService, mail_stack: MailStack, mail_settings: MailSettings
) -> None:
    """Postfix's LMTP target stops answering: the proof fails at delivery, nothing stays."""
    main_cf = mail_stack.postfix_dir / "main.cf"
    original = main_cf.read_text()
    log = mail_stack.directory / "log" / "postfix.log"
    assert mail_stack.postfix is not None
    service.proof_timeout_s = 2.0

    def reload(text: str) -> None:
        reloads = log.read_text().count("reload -- version")
        main_cf.write_text(text)
        os.utime(main_cf, (time.time() - 60, time.time() - 60))
        mail_stack.postfix.send_signal(signal.SIGHUP)  # type: ignore[union-attr]
        deadline = time.monotonic() + 10
        while log.read_text().count("reload -- version") == reloads:
            assert time.monotonic() < deadline, "postfix did not reload"
            time.sleep(0.05)

    dead = f"lmtp:inet:127.0.0.1:{mail_stack.lmtp_port}"
    reload(original.replace(dead, "lmtp:inet:127.0.0.1:9"))  # nothing listens on port 9
    address = fresh("broken")
    try:
        with pytest.raises(VerificationFailed) as err:
            service.create_account(address)
    finally:
        reload(original)
        subprocess.run(
            [*mail_stack.postmap.replace("postmap", "postsuper").split(), "-d", "ALL"],
            capture_output=True,
        )
    message = str(err.value)
    assert "step 'delivery'" in message and "removed again" in message
    assert address not in mail_stack.passwd_file.read_text()
    assert address not in mail_stack.mailbox_map.read_text()
    assert not (mail_stack.mail_root / "example.test" / address.split("@")[0]).exists()
    last = list(AuditLog(mail_settings.audit_log).entries())[-1]  # type: ignore[arg-type]
    assert last["result"] == "rolled-back" and last["failed_step"] == "delivery"
    with pytest.raises(NotFound):
        open_memory(mail_settings.memory).graph.get_entity(address)


CREATE = """
import sys
from pai_core.settings import load_settings
from pai_mail.compose import build_service
from pai_mail.settings import MailSettings
result = build_service(load_settings(MailSettings)).create_account(sys.argv[1])
print("ok" if all(c.ok for c in result.proof) else "failed")
"""


def test_concurrent_creations_from_two_processes_both_land(
    mail_stack: MailStack, tmp_path: Path, service: MailService
) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PAI_")},
        **mail_stack.env(),
        "PAI_HOME": str(tmp_path / "pai"),
        "PAI_CONFIG": str(tmp_path / "none.toml"),
    }
    addresses = [fresh("para"), fresh("para")]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CREATE, a], env=env, stdout=subprocess.PIPE, text=True
        )
        for a in addresses
    ]
    outputs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert outputs == ["ok", "ok"]
    text = mail_stack.passwd_file.read_text()
    assert all(text.count(a + ":") == 1 for a in addresses)
    assert all(a in mail_stack.mailbox_map.read_text() for a in addresses)
    audit = AuditLog(tmp_path / "pai" / "audit.jsonl")
    assert audit.verify().ok and audit.verify().entries == 2


def test_hand_added_lines_survive_every_change(
    service: MailService, mail_stack: MailStack, password_file: object
) -> None:
    hand = "hand-made@example.test:{PLAIN}by-hand-pw::::::"
    comment = "# added by the admin, keep me"
    with mail_stack.passwd_file.open("a") as fh:
        fh.write(f"{comment}\n{hand}\n")
    mode = mail_stack.passwd_file.stat()
    address = fresh("keep")
    created = service.create_account(address, password_file=password_file("a-Chosen-pw-1"))  # type: ignore[operator]
    assert created.password is None and created.password_source == "file"
    service.set_quota(address, "2G")
    service.set_disabled(address, True)
    service.set_disabled(address, False)
    service.reset_password(address)
    service.delete_account(address, archive=False)
    lines = mail_stack.passwd_file.read_text().splitlines()
    assert comment in lines and hand in lines
    assert lines.index(hand) == lines.index(comment) + 1
    after = mail_stack.passwd_file.stat()
    assert (after.st_mode, after.st_uid, after.st_gid) == (mode.st_mode, mode.st_uid, mode.st_gid)
    # The hand-made account still logs in: Dovecot read every rewritten file.
    imap_login(mail_stack, "hand-made@example.test", "by-hand-pw").logout()
    assert service.list_accounts().foreign_lines >= 2


def test_disable_enable_quota_reset_and_validate(
    service: MailService, mail_stack: MailStack, password_file: object
) -> None:
    address = fresh("life")
    first = service.create_account(address)
    assert first.password
    pw_file = password_file(first.password)  # type: ignore[operator]
    assert service.validate_account(address, pw_file).ok

    disabled = service.set_disabled(address, True)
    assert disabled.changed and disabled.account.disabled
    assert "disabled" in disabled.verification[0].detail
    refused = service.validate_account(address, pw_file)
    assert not refused.ok and refused.failed_step == "imap-login"
    with pytest.raises(smtplib.SMTPAuthenticationError):
        send(mail_stack, address, first.password, address, "while disabled")
    again = service.set_disabled(address, True)
    assert not again.changed
    with pytest.raises(Conflict):
        service.reset_password(address)
    enabled = service.set_disabled(address, False)
    assert enabled.changed and not enabled.account.disabled
    assert service.validate_account(address, pw_file).ok

    quota = service.set_quota(address, "3G")
    assert quota.account.quota_mb == 3072 and "storage=3072M" in quota.verification[0].detail

    reset = service.reset_password(address)
    assert reset.password and reset.password != first.password
    assert not service.validate_account(address, pw_file).ok
    assert service.validate_account(address, password_file(reset.password)).ok  # type: ignore[operator]


def test_delete_archives_the_mailbox_first(
    service: MailService, mail_stack: MailStack, mail_settings: MailSettings
) -> None:
    address = fresh("gone")
    created = service.create_account(address)
    assert created.password
    send(mail_stack, address, created.password, address, "keep this in the archive")
    conn = imap_login(mail_stack, address, created.password)
    wait_for_subject(conn, "keep this in the archive")
    conn.logout()
    alias = fresh("alias")
    service.add_alias(alias, address)
    result = service.delete_account(address)
    assert result.archive and result.archived_files >= 1 and result.aliases_removed == [alias]
    assert all(c.ok for c in result.verification)
    with tarfile.open(result.archive) as tar:
        bodies = [
            tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile() and "/Maildir/" in m.name and "/cur/" in m.name or "/new/" in m.name
        ]
    assert any(b"keep this in the archive" in b for b in bodies)
    assert Path(result.archive).stat().st_mode & 0o777 == 0o600
    assert not (mail_stack.mail_root / "example.test" / address.split("@")[0]).exists()
    with pytest.raises(imaplib.IMAP4.error):
        imap_login(mail_stack, address, created.password)
    graph = open_memory(mail_settings.memory).graph
    assert not [
        f for f in graph.get_entity(address).outgoing if f.predicate == "IS_MAIL_ACCOUNT_ON"
    ]


def test_an_alias_delivers_to_its_target(service: MailService, mail_stack: MailStack) -> None:
    address = fresh("target")
    created = service.create_account(address)
    assert created.password
    alias = fresh("sales")
    added = service.add_alias(alias, address.upper())
    assert added.verification[0].ok and added.memory.remembered
    with pytest.raises(Conflict):
        service.add_alias(address, address)  # an alias may not shadow an account
    with pytest.raises(Conflict):
        service.add_alias(alias, address)
    send(mail_stack, address, created.password, alias, "via the alias")
    conn = imap_login(mail_stack, address, created.password)
    wait_for_subject(conn, "via the alias")
    conn.logout()
    removed = service.remove_alias(alias)
    assert removed.target == address and removed.verification[0].ok
    assert alias not in service.list_accounts().aliases
