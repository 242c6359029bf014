"""Provision mail accounts, then prove them from outside; roll back when the proof fails.

Every mutation follows one path: validate (nothing changed on bad input) → write the
passwd-file / Postfix maps (locked, atomic, merged with concurrent changes; see
:mod:`pai_mail.linefile`) → wait until Dovecot has loaded the change (its passwd-file is
re-read at most once a second, by whole-second mtime) → prove it (IMAP LOGIN, SMTP AUTH, a test
message delivered to the INBOX and deleted, see :mod:`pai_mail.proof`; or ``doveadm`` /
``postmap -q`` for changes without a password) → on failure undo the change and raise, naming
the step → on success append to the audit log and record the facts in the shared memory.
Passwords are never logged, audited or remembered; a generated one is returned once.
"""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from pai_core.audit import AuditLog
from pai_core.errors import Conflict, InvalidInput, NotFound, PolicyDenied, VerificationFailed
from pai_core.log import register_secret
from pai_core.memory.record import ChangeFact, MemoryNote
from pai_mail.accounts import Account
from pai_mail.addresses import Address, parse_address, parse_domain
from pai_mail.backend import DovecotView, MailBackend
from pai_mail.hashing import generate_password, hash_password
from pai_mail.models import (
    AccountInfo,
    AccountList,
    AliasResult,
    ChangeResult,
    Check,
    CreateResult,
    DeleteResult,
    ResetResult,
    ValidateResult,
)
from pai_mail.proof import ProofFailed, ProofStep, Prover

__all__ = ["MailService", "Recorder"]

log = logging.getLogger(__name__)
_QUOTA = re.compile(r"^\s*(\d+)\s*(m|mb|mib|g|gb|gib)?\s*$", re.I)


class Recorder(Protocol):
    """What the service needs from the shared memory (a ChangeRecorder)."""

    def record(
        self, audit_id: str | int, facts: Sequence[ChangeFact], *, at: float | None = None
    ) -> MemoryNote: ...


def _check(step: ProofStep) -> Check:
    return Check(step=step.step, ok=step.ok, ms=step.ms, detail=step.detail)


@dataclass
class MailService:
    backend: MailBackend
    prover: Prover
    audit: AuditLog
    recorder: Recorder
    domains: tuple[str, ...]
    scheme: str = "SHA512-CRYPT"
    uid: int | None = None
    gid: int | None = None
    mail_root: Path | None = None
    archive_dir: Path = Path("archives")
    proof_timeout_s: float = 30.0
    poll_interval_s: float = 0.05
    min_quota_mb: int = 1
    max_quota_mb: int = 1024 * 1024
    default_quota_mb: int = 1024

    def __post_init__(self) -> None:
        self.domains = tuple(parse_domain(d, field="PAI_MAIL_DOMAINS") for d in self.domains)

    # ------------------------------------------------------------------ input
    def address(self, text: str, field: str = "address") -> Address:
        addr = parse_address(text, field=field)
        if addr.domain not in self.domains:
            raise PolicyDenied(
                f"{addr.domain} is not a mail domain managed here",
                rule="managed-domains",
                field=field,
                hint=f"Managed domains: {', '.join(self.domains) or 'none (set PAI_MAIL_DOMAINS)'}"
                "; nothing was changed.",
            )
        return addr

    def quota(self, text: str | int | None) -> int:
        if text is None:
            return self.default_quota_mb
        m = _QUOTA.match(str(text))
        if not m:
            raise InvalidInput(
                f"quota {text!r} is not a size such as '512M' or '2G'", field="quota"
            )
        mb = int(m.group(1)) * (1024 if (m.group(2) or "m").lower().startswith("g") else 1)
        if not self.min_quota_mb <= mb <= self.max_quota_mb:
            raise InvalidInput(
                f"quota {mb} MiB is outside {self.min_quota_mb}..{self.max_quota_mb} MiB",
                field="quota",
            )
        return mb

    @staticmethod
    def display_name(text: str | None) -> str:
        name = (text or "").strip()
        if len(name) > 128 or ":" in name or any(not c.isprintable() for c in name):
            raise InvalidInput(
                "display_name must be at most 128 printable characters without ':'",
                field="display_name",
            )
        return name

    @staticmethod
    def read_password(path: str, field: str = "password_file") -> str:
        """The password in ``path`` (its first line); errors never show the file's content."""
        file = Path(path).expanduser()
        try:
            if file.stat().st_size > 4096:
                raise InvalidInput(f"{file} is larger than 4 KiB: not a password file", field=field)
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInput(
                f"cannot read the password file {file}: {type(exc).__name__}", field=field
            ) from exc
        lines = text.splitlines()
        password = lines[0] if lines else ""
        if not 8 <= len(password) <= 256 or any(not c.isprintable() for c in password):
            raise InvalidInput(
                f"the first line of {file} must be a password of 8 to 256 printable characters",
                field=field,
            )
        register_secret(password)
        return password

    def _existing(self, addr: Address) -> Account:
        account = self.backend.get_account(str(addr))
        if account is None:
            raise NotFound(f"no account {addr}", hint="list_accounts shows the accounts.")
        return account

    def _info(self, account: Account, aliases: dict[str, str] | None = None) -> AccountInfo:
        aliases = self.backend.list_aliases() if aliases is None else aliases
        home = self.backend.mailbox_dir(account) if account.home else None
        return AccountInfo(
            address=account.address,
            display_name=account.display_name,
            quota_mb=account.quota_mb,
            disabled=account.disabled,
            managed_domain=account.address.rpartition("@")[2] in self.domains,
            home=str(home) if home else (account.home or None),
            aliases=sorted(a for a, t in aliases.items() if t == account.address),
        )

    # ------------------------------------------------------------------ reading
    def list_accounts(
        self, domain: str | None = None, limit: int = 200, offset: int = 0
    ) -> AccountList:
        wanted = parse_domain(domain) if domain else None
        accounts = self.backend.list_accounts()
        aliases = self.backend.list_aliases()
        rows = [
            self._info(a, aliases)
            for a in sorted(accounts, key=lambda a: a.address)
            if wanted is None or a.address.endswith("@" + wanted)
        ]
        passwd_lines = getattr(getattr(self.backend, "passwd", None), "read", None)
        total_lines = len(passwd_lines().lines) if passwd_lines else len(accounts)
        return AccountList(
            accounts=rows[offset : offset + limit],
            total=len(rows),
            offset=offset,
            aliases=aliases,
            foreign_lines=total_lines - len(accounts),
        )

    # ------------------------------------------------------------------ waiting for Dovecot
    def _await_dovecot(
        self, address: str, written_at: float, want: Callable[[DovecotView], bool], what: str
    ) -> Check:
        """Wait past Dovecot's reload window, flush its auth cache, then poll doveadm."""
        started = time.perf_counter()
        # Dovecot re-reads the passwd-file on the first lookup of a later whole second.
        boundary = int(written_at) + 1.005
        if (pause := boundary - time.time()) > 0:
            time.sleep(pause)
        self.backend.flush_cache(address)
        deadline = time.monotonic() + self.proof_timeout_s
        polls = 0
        while True:
            polls += 1
            view = self.backend.dovecot_view(address)
            if view is None:
                detail = "waited for Dovecot's reload window (no doveadm configured)"
                return Check(step="dovecot-loaded", ok=True, ms=_ms(started), detail=detail)
            if want(view):
                detail = f"doveadm shows {what} after {polls} lookup(s)"
                return Check(step="dovecot-loaded", ok=True, ms=_ms(started), detail=detail)
            if time.monotonic() >= deadline:
                raise ProofFailed(
                    "dovecot-loaded",
                    f"Dovecot did not show {what} within {self.proof_timeout_s:g} s",
                    [ProofStep("dovecot-loaded", False, _ms(started))],
                )
            time.sleep(self.poll_interval_s)

    def _prove(self, address: str, password: str, written_at: float) -> list[Check]:
        loaded = self._await_dovecot(
            address, written_at, lambda v: v.exists and "nologin" not in v.passdb, "the account"
        )
        steps = self.prover.prove(address, password, self.proof_timeout_s)
        return [loaded, *(_check(s) for s in steps)]

    # ------------------------------------------------------------------ create
    def create_account(
        self,
        address: str,
        quota: str | int | None = None,
        display_name: str | None = None,
        password_file: str | None = None,
    ) -> CreateResult:
        addr = self.address(address)
        quota_mb = self.quota(quota)
        name = self.display_name(display_name)
        password = self.read_password(password_file) if password_file else generate_password()
        register_secret(password)
        if str(addr) in self.backend.list_aliases():
            raise Conflict(
                f"{addr} is an alias", hint="Remove the alias first; nothing was changed."
            )
        home = self.mail_root / addr.domain / addr.local if self.mail_root else None
        if home is not None and home.exists():
            raise Conflict(
                f"a mailbox directory for {addr} already exists at {home} (left by an earlier "
                "account?)",
                hint="Archive or remove it first, so a new account cannot read old mail; "
                "nothing was changed.",
            )
        account = Account(
            address=str(addr),
            password=hash_password(password, self.scheme),
            uid=str(self.uid or ""),
            gid=str(self.gid or ""),
            display_name=name,
            home=str(home) if home else "",
            quota_mb=quota_mb,
        )
        self.backend.add_account(account)
        written_at = time.time()
        try:
            proof = self._prove(str(addr), password, written_at)
        except ProofFailed as failed:
            self._roll_back_create(account, home)
            entry = self.audit.append(
                "mail.create_account",
                address=str(addr),
                result="rolled-back",
                failed_step=failed.step,
                reason=failed.detail,
                steps=[_check(s).model_dump() for s in failed.steps],
            )
            raise VerificationFailed(
                f"{addr} was created but the proof failed at step '{failed.step}': "
                f"{failed.detail}. The account was removed again (audit {entry['seq']})",
                step=failed.step,
                hint="Fix the mail system (health shows the endpoints), then create it again.",
            ) from failed
        entry = self.audit.append(
            "mail.create_account",
            address=str(addr),
            display_name=name,
            quota_mb=quota_mb,
            result="created",
            proof=[c.model_dump() for c in proof],
        )
        facts = [
            ChangeFact(
                str(addr),
                "IS_MAIL_ACCOUNT_ON",
                object=addr.domain,
                subject_type="mail_account",
                object_type="mail_domain",
            ),
            ChangeFact(str(addr), "HAS_QUOTA", value=f"{quota_mb} MiB"),
            ChangeFact(str(addr), "HAS_STATUS", value="active"),
        ]
        if name:
            facts.append(ChangeFact(str(addr), "HAS_DISPLAY_NAME", value=name))
        memory = self.recorder.record(entry["seq"], facts, at=written_at)
        return CreateResult(
            address=str(addr),
            password=None if password_file else password,
            password_source="file" if password_file else "generated",
            account=self._info(account),
            proof=proof,
            audit_id=entry["seq"],
            memory=memory,
        )

    def _roll_back_create(self, account: Account, home: Path | None) -> None:
        with contextlib.suppress(NotFound):
            self.backend.remove_account(account.address)
        if home is not None and home.exists():
            shutil.rmtree(home, ignore_errors=True)

    # ------------------------------------------------------------------ password
    def reset_password(self, address: str, password_file: str | None = None) -> ResetResult:
        addr = self.address(address)
        old = self._existing(addr)
        if old.disabled:
            raise Conflict(f"{addr} is disabled", hint="enable_account first; nothing was changed.")
        password = self.read_password(password_file) if password_file else generate_password()
        register_secret(password)
        new_hash = hash_password(password, self.scheme)
        self.backend.update_account(str(addr), lambda a: replace(a, password=new_hash))
        written_at = time.time()
        try:
            proof = self._prove(str(addr), password, written_at)
        except ProofFailed as failed:
            self.backend.update_account(str(addr), lambda a: replace(a, password=old.password))
            entry = self.audit.append(
                "mail.reset_password",
                address=str(addr),
                result="rolled-back",
                failed_step=failed.step,
                reason=failed.detail,
            )
            raise VerificationFailed(
                f"the new password of {addr} failed its proof at step '{failed.step}': "
                f"{failed.detail}. The old password is back in place (audit {entry['seq']})",
                step=failed.step,
            ) from failed
        entry = self.audit.append(
            "mail.reset_password",
            address=str(addr),
            result="reset",
            proof=[c.model_dump() for c in proof],
        )
        when = datetime.fromtimestamp(written_at, UTC).isoformat(timespec="seconds")
        memory = self.recorder.record(
            entry["seq"], [ChangeFact(str(addr), "PASSWORD_CHANGED_AT", value=when)], at=written_at
        )
        return ResetResult(
            address=str(addr),
            password=None if password_file else password,
            password_source="file" if password_file else "generated",
            proof=proof,
            audit_id=entry["seq"],
            memory=memory,
        )

    # ------------------------------------------------------------------ quota, disable, enable
    def set_quota(self, address: str, quota: str | int) -> ChangeResult:
        addr = self.address(address)
        mb = self.quota(quota)
        rule = f"*:storage={mb}M"
        return self._change(
            addr,
            "set_quota",
            lambda a: replace(a, quota_mb=mb),
            lambda v: v.userdb.get("quota_rule") == rule,
            f"quota_rule {rule}",
            [ChangeFact(str(addr), "HAS_QUOTA", value=f"{mb} MiB")],
            {"quota_mb": mb},
        )

    def set_disabled(self, address: str, disabled: bool) -> ChangeResult:
        addr = self.address(address)
        status = "disabled" if disabled else "active"
        return self._change(
            addr,
            "disable" if disabled else "enable",
            lambda a: a.with_disabled(disabled),
            lambda v: v.exists and (("nologin" in v.passdb) == disabled),
            f"the account {status}",
            [ChangeFact(str(addr), "HAS_STATUS", value=status)],
            {},
        )

    def _change(
        self,
        addr: Address,
        action: Any,
        edit: Callable[[Account], Account],
        want: Callable[[DovecotView], bool],
        what: str,
        facts: list[ChangeFact],
        fields: dict[str, Any],
    ) -> ChangeResult:
        old = self._existing(addr)
        new = edit(old)
        changed = new != old
        if changed:
            new = self.backend.update_account(str(addr), edit)
        written_at = time.time()
        try:
            check = self._await_dovecot(str(addr), written_at if changed else 0.0, want, what)
        except ProofFailed as failed:
            if changed:
                self.backend.update_account(str(addr), lambda a: old)
            entry = self.audit.append(
                f"mail.{action}", address=str(addr), result="rolled-back", reason=failed.detail
            )
            raise VerificationFailed(
                f"{action} {addr}: {failed.detail}; the change was undone (audit {entry['seq']})",
                step=failed.step,
            ) from failed
        entry = self.audit.append(
            f"mail.{action}",
            address=str(addr),
            result="changed" if changed else "unchanged",
            verification=check.model_dump(),
            **fields,
        )
        memory = self.recorder.record(entry["seq"], facts, at=written_at)
        return ChangeResult(
            address=str(addr),
            action=action,
            changed=changed,
            account=self._info(new),
            verification=[check],
            audit_id=entry["seq"],
            memory=memory,
        )

    # ------------------------------------------------------------------ delete
    def delete_account(self, address: str, archive: bool = True) -> DeleteResult:
        addr = self.address(address)
        account = self._existing(addr)
        home = self.backend.mailbox_dir(account)
        tarball, size, files = None, 0, 0
        if archive and home is not None and home.exists():
            tarball, size, files = self._archive(str(addr), home)
        aliases = [a for a, t in self.backend.list_aliases().items() if t == str(addr)]
        for alias in aliases:
            self.backend.remove_alias(alias)
        self.backend.remove_account(str(addr))
        written_at = time.time()
        if home is not None and home.exists():
            shutil.rmtree(home)
        checks = [
            self._await_dovecot(str(addr), written_at, lambda v: not v.exists, "no such user")
        ]
        started = time.perf_counter()
        found = self.backend.postfix_lookup("mailbox", str(addr))
        checks.append(
            Check(
                step="postfix-map",
                ok=found is None,
                ms=_ms(started),
                detail="Postfix no longer accepts mail for it"
                if found is None
                else f"Postfix still maps it to {found}",
            )
        )
        entry = self.audit.append(
            "mail.delete_account",
            address=str(addr),
            result="deleted",
            archive=str(tarball) if tarball else None,
            archived_files=files,
            aliases_removed=aliases,
            verification=[c.model_dump() for c in checks],
        )
        facts = [
            ChangeFact(str(addr), p, ended=True)
            for p in ("IS_MAIL_ACCOUNT_ON", "HAS_QUOTA", "HAS_STATUS", "HAS_DISPLAY_NAME")
        ]
        facts += [ChangeFact(a, "FORWARDS_TO", ended=True) for a in aliases]
        if tarball:
            facts.append(ChangeFact(str(addr), "MAILBOX_ARCHIVED_AS", value=str(tarball)))
        memory = self.recorder.record(entry["seq"], facts, at=written_at)
        return DeleteResult(
            address=str(addr),
            archive=str(tarball) if tarball else None,
            archive_bytes=size,
            archived_files=files,
            aliases_removed=aliases,
            verification=checks,
            audit_id=entry["seq"],
            memory=memory,
        )

    def _archive(self, address: str, home: Path) -> tuple[Path, int, int]:
        """A gzip tarball of ``home`` in the archive dir, re-read to check it is complete."""
        self.archive_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        target = self.archive_dir / f"{address}-{stamp}.tar.gz"
        expected = sum(1 for p in home.rglob("*") if p.is_file())
        fd, tmp_name = tempfile.mkstemp(prefix=".archive-", dir=self.archive_dir)
        tmp = Path(tmp_name)
        try:
            with open(fd, "wb") as fh, tarfile.open(fileobj=fh, mode="w:gz") as tar:
                tar.add(home, arcname=address)
            with tarfile.open(tmp, "r:gz") as tar:
                files = sum(1 for m in tar.getmembers() if m.isfile())
            if files != expected:
                raise VerificationFailed(
                    f"the archive of {address} holds {files} files, the mailbox {expected}",
                    hint="Nothing was deleted; check the disk and retry.",
                )
            tmp.chmod(0o600)
            tmp.replace(target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return target, target.stat().st_size, files

    # ------------------------------------------------------------------ aliases
    def add_alias(self, alias: str, target: str) -> AliasResult:
        src = self.address(alias, "alias")
        dst = parse_address(target, field="target")
        if self.backend.get_account(str(src)) is not None:
            raise Conflict(f"{src} is an account", hint="An alias cannot shadow an account.")
        if dst.domain in self.domains and self.backend.get_account(str(dst)) is None:
            raise NotFound(f"no account {dst} to deliver to", hint="Create it first.")
        self.backend.add_alias(str(src), str(dst))
        return self._alias_done(
            "add_alias",
            str(src),
            str(dst),
            str(dst),
            [
                ChangeFact(
                    str(src),
                    "FORWARDS_TO",
                    object=str(dst),
                    subject_type="mail_alias",
                    object_type="mail_account",
                )
            ],
        )

    def remove_alias(self, alias: str) -> AliasResult:
        src = self.address(alias, "alias")
        target = self.backend.remove_alias(str(src))
        return self._alias_done(
            "remove_alias",
            str(src),
            target,
            None,
            [ChangeFact(str(src), "FORWARDS_TO", ended=True)],
        )

    def _alias_done(
        self, action: Any, alias: str, target: str, want: str | None, facts: list[ChangeFact]
    ) -> AliasResult:
        written_at = time.time()
        started = time.perf_counter()
        found = self.backend.postfix_lookup("alias", alias)
        check = Check(
            step="postfix-map",
            ok=found == want,
            ms=_ms(started),
            detail=f"postmap -q {alias} gives {found or 'nothing'}",
        )
        entry = self.audit.append(
            f"mail.{action}",
            alias=alias,
            target=target,
            result="applied" if check.ok else "applied-unverified",
            verification=check.model_dump(),
        )
        if not check.ok:
            raise VerificationFailed(
                f"{action} {alias}: Postfix's map does not show the change ({check.detail})",
                hint="Check PAI_MAIL_POSTMAP and the map path; the file itself was written.",
            )
        memory = self.recorder.record(entry["seq"], facts, at=written_at)
        return AliasResult(
            alias=alias,
            target=target,
            action=action,
            verification=[check],
            audit_id=entry["seq"],
            memory=memory,
        )

    # ------------------------------------------------------------------ validate
    def validate_account(self, address: str, password_file: str) -> ValidateResult:
        addr = self.address(address)
        self._existing(addr)
        password = self.read_password(password_file)
        try:
            steps = [
                _check(s) for s in self.prover.prove(str(addr), password, self.proof_timeout_s)
            ]
        except ProofFailed as failed:
            return ValidateResult(
                address=str(addr),
                ok=False,
                failed_step=failed.step,
                proof=[_check(s) for s in failed.steps],
            )
        return ValidateResult(address=str(addr), ok=True, failed_step=None, proof=steps)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
