"""The composition of the mail service from its settings, without the MCP SDK (so scripts,
`pai doctor` and other processes can build it cheaply)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pai_core.errors import ConfigError
from pai_mail.settings import MailSettings

if TYPE_CHECKING:
    from pai_mail.service import MailService

__all__ = ["build_service", "probe"]


def probe(settings: MailSettings) -> dict[str, Any]:
    problems = []
    if not settings.domains:
        problems.append("no mail domains: set PAI_MAIL_DOMAINS")
    if not settings.passwd_file:
        problems.append("no passwd-file: set PAI_MAIL_PASSWD_FILE")
    elif not settings.passwd_file.exists():
        problems.append(f"the passwd-file {settings.passwd_file} does not exist")
    if not settings.postfix_virtual_mailbox_file:
        problems.append("no Postfix map: set PAI_MAIL_POSTFIX_VIRTUAL_MAILBOX_FILE")
    return {
        "backend": f"dovecot-passwd-file:{settings.passwd_file}"
        if settings.passwd_file
        else "dovecot (unset)",
        "configured": not problems,
        "problems": problems,
        "details": {
            "domains": settings.domains,
            "imap": f"{settings.imap_host}:{settings.imap_port} ({settings.imap_tls})",
            "submission": f"{settings.submission_host}:{settings.submission_port} "
            f"({settings.submission_tls})",
            "doveadm": settings.doveadm or None,
        },
    }


def _predicates() -> list[Any]:
    from pai_core.memory.record import PredicateSpec

    return [
        PredicateSpec("IS_MAIL_ACCOUNT_ON", "one", "A mail account lives on a mail domain."),
        PredicateSpec("HAS_QUOTA", "one", "A mail account's storage quota."),
        PredicateSpec("HAS_STATUS", "one", "Whether a mail account is active or disabled."),
        PredicateSpec("HAS_DISPLAY_NAME", "one", "A mail account's display name."),
        PredicateSpec("PASSWORD_CHANGED_AT", "one", "When a mail account's password changed."),
        PredicateSpec("FORWARDS_TO", "one", "A mail alias delivers to an address."),
        PredicateSpec("MAILBOX_ARCHIVED_AS", "many", "A deleted mailbox's archive tarball."),
    ]


def build_service(settings: MailSettings) -> MailService:
    """The service for configured settings (ConfigError naming what is missing otherwise)."""
    from pai_core.audit import AuditLog
    from pai_core.memory.record import ChangeRecorder
    from pai_mail.backend import DovecotPostfixBackend
    from pai_mail.proof import Endpoint, Prover
    from pai_mail.service import MailService

    problems = probe(settings)["problems"]
    if problems:
        raise ConfigError("the mail server is not configured: " + "; ".join(problems))
    assert settings.passwd_file is not None and settings.audit_log is not None
    backend = DovecotPostfixBackend(
        settings.passwd_file,
        mailbox_map=settings.postfix_virtual_mailbox_file,
        alias_map=settings.postfix_virtual_alias_file,
        postmap=settings.postmap,
        doveadm=settings.doveadm or None,
        flush_auth_cache=settings.flush_auth_cache,
    )
    prover = Prover(
        imap=Endpoint(settings.imap_host, settings.imap_port, settings.imap_tls),
        submission=Endpoint(
            settings.submission_host, settings.submission_port, settings.submission_tls
        ),
        timeout_s=settings.timeout_s,
        poll_interval_s=settings.poll_interval_s,
        ca_file=settings.tls_ca_file,
    )
    return MailService(
        backend=backend,
        prover=prover,
        audit=AuditLog(settings.audit_log),
        recorder=ChangeRecorder.from_settings(settings, predicates=_predicates()),
        domains=tuple(settings.domains),
        scheme=settings.scheme,
        uid=settings.uid,
        gid=settings.gid,
        mail_root=settings.mail_root,
        archive_dir=settings.archive_path,
        proof_timeout_s=settings.proof_timeout_s,
        poll_interval_s=settings.poll_interval_s,
        min_quota_mb=settings.min_quota_mb,
        max_quota_mb=settings.max_quota_mb,
        default_quota_mb=settings.default_quota_mb,
    )
