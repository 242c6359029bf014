"""Prove an account works from outside, over the protocols its user will use.

Steps, in order, each timed: ``imap-login`` (IMAP LOGIN with the password), ``smtp-auth`` (SMTP
AUTH on the submission port), ``send`` (a test message from the account to itself, carrying a
random ``X-PAI-Proof`` token), ``delivery`` (poll the INBOX over IMAP until that message is
there, within the deadline), ``cleanup`` (delete and expunge the test message, and check it is
gone). The first failing step raises :class:`ProofFailed` with the steps so far. Nothing here
logs or returns the password.
"""

from __future__ import annotations

import contextlib
import imaplib
import secrets
import smtplib
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

__all__ = ["Endpoint", "ProofFailed", "ProofStep", "Prover"]


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str
    port: int
    tls: str = "none"  # none | starttls | tls


@dataclass(slots=True)
class ProofStep:
    step: str
    ok: bool
    ms: float
    detail: str = ""


class ProofFailed(Exception):
    """A proof step failed; ``steps`` holds every step run, the failed one last."""

    def __init__(self, step: str, detail: str, steps: list[ProofStep]) -> None:
        super().__init__(f"step {step!r} failed: {detail}")
        self.step = step
        self.detail = detail
        self.steps = steps


def _reason(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        msg = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else ""
        return f"SMTP {exc.smtp_code} {msg}".strip()
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return "; ".join(
            f"{rcpt}: {code} {msg.decode(errors='replace')}"
            for rcpt, (code, msg) in exc.recipients.items()
        )
    text = str(exc.args[0] if exc.args else exc)
    if text.startswith("b'") or text.startswith('b"'):
        text = text[2:-1]
    return f"{type(exc).__name__}: {text}"


@dataclass
class Prover:
    imap: Endpoint
    submission: Endpoint
    timeout_s: float = 10.0
    poll_interval_s: float = 0.05
    ca_file: Path | None = None

    def _context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)

    @staticmethod
    def _run(steps: list[ProofStep], name: str, fn: Callable[[], str]) -> None:
        started = time.perf_counter()
        try:
            detail = fn()
        except Exception as exc:  # every failure of a step is reported, named
            ms = (time.perf_counter() - started) * 1000
            steps.append(ProofStep(name, False, round(ms, 1), _reason(exc)))
            raise ProofFailed(name, _reason(exc), list(steps)) from exc
        ms = (time.perf_counter() - started) * 1000
        steps.append(ProofStep(name, True, round(ms, 1), detail))

    def _imap(self) -> imaplib.IMAP4:
        ep = self.imap
        if ep.tls == "tls":
            return imaplib.IMAP4_SSL(
                ep.host, ep.port, ssl_context=self._context(), timeout=self.timeout_s
            )
        conn = imaplib.IMAP4(ep.host, ep.port, timeout=self.timeout_s)
        if ep.tls == "starttls":
            conn.starttls(self._context())
        return conn

    def _smtp(self) -> smtplib.SMTP:
        ep = self.submission
        if ep.tls == "tls":
            conn: smtplib.SMTP = smtplib.SMTP_SSL(
                ep.host, ep.port, timeout=self.timeout_s, context=self._context()
            )
        else:
            conn = smtplib.SMTP(ep.host, ep.port, timeout=self.timeout_s)
        conn.ehlo()
        if ep.tls == "starttls":
            conn.starttls(context=self._context())
            conn.ehlo()
        return conn

    def prove(self, address: str, password: str, deadline_s: float) -> list[ProofStep]:
        """Run every step; return them, or raise ProofFailed at the first that fails."""
        steps: list[ProofStep] = []
        token = secrets.token_hex(12)
        imap: imaplib.IMAP4 | None = None
        smtp: smtplib.SMTP | None = None
        try:

            def login() -> str:
                nonlocal imap
                imap = self._imap()
                imap.login(address, password)
                typ, _ = imap.select("INBOX")
                if typ != "OK":
                    raise RuntimeError("INBOX cannot be selected")
                return "IMAP LOGIN accepted, INBOX selected"

            self._run(steps, "imap-login", login)

            def auth() -> str:
                nonlocal smtp
                smtp = self._smtp()
                smtp.login(address, password)
                return "SMTP AUTH accepted on submission"

            self._run(steps, "smtp-auth", auth)

            def send() -> str:
                assert smtp is not None
                msg = EmailMessage()
                msg["From"] = address
                msg["To"] = address
                msg["Subject"] = "PAI account check (deleted automatically)"
                msg["Date"] = formatdate(localtime=False)
                msg["Message-ID"] = make_msgid(domain=address.rpartition("@")[2])
                msg["X-PAI-Proof"] = token
                msg.set_content("This message proves that the account receives mail.\n")
                refused = smtp.send_message(msg, from_addr=address, to_addrs=[address])
                if refused:
                    raise RuntimeError(f"recipient refused: {refused}")
                smtp.quit()
                return "accepted by the submission server"

            self._run(steps, "send", send)
            uids: list[bytes] = []

            def delivery() -> str:
                assert imap is not None
                end = time.monotonic() + deadline_s
                polls = 0
                while True:
                    polls += 1
                    imap.noop()
                    typ, data = imap.uid("SEARCH", "HEADER", "X-PAI-Proof", token)
                    if typ == "OK" and data and data[0]:
                        uids.extend(data[0].split())
                        return f"in INBOX after {polls} poll(s)"
                    if time.monotonic() >= end:
                        raise TimeoutError(
                            f"the test message did not arrive in INBOX within {deadline_s:g} s"
                        )
                    time.sleep(self.poll_interval_s)

            self._run(steps, "delivery", delivery)

            def cleanup() -> str:
                assert imap is not None
                uid_set = b",".join(uids).decode()
                imap.uid("STORE", uid_set, "+FLAGS.SILENT", r"(\Deleted)")
                imap.expunge()
                typ, data = imap.uid("SEARCH", "HEADER", "X-PAI-Proof", token)
                if typ != "OK" or (data and data[0]):
                    raise RuntimeError("the test message is still in INBOX after EXPUNGE")
                return "test message deleted"

            self._run(steps, "cleanup", cleanup)
            return steps
        finally:
            for closer in (imap.logout if imap else None, smtp.close if smtp else None):
                if closer is not None:
                    with contextlib.suppress(OSError, imaplib.IMAP4.error, smtplib.SMTPException):
                        closer()
