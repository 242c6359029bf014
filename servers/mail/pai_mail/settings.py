"""Settings of the Mail server (env prefix ``PAI_MAIL_``, config table ``[mail]``)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from pai_core.settings import ServerSettings

__all__ = ["MailSettings", "TlsMode"]

TlsMode = Literal["none", "starttls", "tls"]


class MailSettings(ServerSettings):
    """Everything the Mail server reads from its environment or the config file."""

    model_config = SettingsConfigDict(env_prefix="PAI_MAIL_", extra="ignore")
    server_name: ClassVar[str] = "mail"

    domains: list[str] = Field(
        default_factory=list, description="Mail domains this server provisions."
    )
    passwd_file: Path | None = Field(None, description="Dovecot passwd-file to manage.")
    mail_root: Path | None = Field(
        None, description="Mailbox homes live in MAIL_ROOT/<domain>/<local part>."
    )
    uid: int | None = Field(
        None,
        ge=1,
        description="Mail uid written into each account line (Dovecot's default if unset).",
    )
    gid: int | None = Field(None, ge=1, description="Mail gid written into each account line.")
    scheme: Literal["SHA512-CRYPT", "BLF-CRYPT"] = Field(
        "SHA512-CRYPT", description="Password hash scheme (BLF-CRYPT needs the bcrypt package)."
    )
    imap_host: str = Field("127.0.0.1", description="IMAP server used to prove an account.")
    imap_port: int = Field(143, ge=1, le=65535, description="IMAP port.")
    imap_tls: TlsMode = Field("none", description="none, starttls or tls (implicit TLS).")
    submission_host: str = Field("127.0.0.1", description="SMTP submission server for proofs.")
    submission_port: int = Field(587, ge=1, le=65535, description="Submission port.")
    submission_tls: TlsMode = Field("none", description="none, starttls or tls (implicit TLS).")
    tls_ca_file: Path | None = Field(
        None, description="CA bundle to verify the IMAP/submission certificates with."
    )
    postfix_virtual_mailbox_file: Path | None = Field(
        None, description="Postfix virtual_mailbox_maps source file (one address per line)."
    )
    postfix_virtual_alias_file: Path | None = Field(
        None, description="Postfix virtual_alias_maps source file (needed for aliases)."
    )
    postmap: str = Field(
        "postmap", description="Command that rebuilds a Postfix map, e.g. 'postmap -c /etc/x'."
    )
    doveadm: str | None = Field(
        "doveadm",
        description="doveadm command to watch Dovecot load a change ('doveadm -c FILE'); "
        "empty to prove by login only.",
    )
    flush_auth_cache: bool = Field(
        True, description="Run `doveadm auth cache flush <user>` after every change."
    )
    archive_dir: Path | None = Field(
        None, description="Where delete_account puts mailbox tarballs (default: DATA_DIR/archives)."
    )
    proof_timeout_s: float = Field(
        30.0, gt=0, description="Deadline for Dovecot to load a change and a test message to land."
    )
    poll_interval_s: float = Field(
        0.05, gt=0, le=5, description="How often the proof polls Dovecot and the INBOX."
    )
    min_quota_mb: int = Field(1, ge=0, description="Smallest quota an account may get (MiB).")
    max_quota_mb: int = Field(
        1024 * 1024, gt=0, description="Largest quota an account may get (MiB)."
    )
    default_quota_mb: int = Field(1024, gt=0, description="Quota when none is given (MiB).")
    timeout_s: float = Field(10.0, gt=0, description="Per-connection timeout for IMAP/SMTP.")

    @property
    def archive_path(self) -> Path:
        return self.archive_dir or self.data_path / "archives"
