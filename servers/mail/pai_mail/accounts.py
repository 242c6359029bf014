"""One Dovecot passwd-file line as an :class:`Account`, and back.

Line format (Dovecot passwd-file): ``user:password:uid:gid:gecos:home:shell:extra_fields``,
extra fields space-separated. This server uses the gecos field for the display name,
``userdb_quota_rule=*:storage=<N>M`` for the quota, and a disabled account has ``!`` in front
of its hash (no password matches it, over IMAP and SMTP AUTH alike) plus ``nologin=y`` (so
``doveadm auth lookup`` shows Dovecot has loaded the disabled state).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from pai_mail.hashing import LOCK_PREFIX

__all__ = ["Account", "account_key", "format_line", "parse_line"]

_QUOTA = re.compile(r"^userdb_quota_rule=\*:storage=(\d+)M$")
_SCHEME = re.compile(r"^(\{[A-Z0-9.-]+\})?(.*)$", re.S)
NOLOGIN = "nologin=y"


@dataclass(frozen=True, slots=True)
class Account:
    """An account line; ``extra`` keeps every extra field this server does not interpret."""

    address: str
    password: str = field(repr=False)
    uid: str = ""
    gid: str = ""
    display_name: str = ""
    home: str = ""
    shell: str = ""
    quota_mb: int | None = None
    disabled: bool = False
    extra: tuple[str, ...] = ()

    def locked_password(self) -> str:
        scheme, rest = _SCHEME.match(self.password).groups()  # type: ignore[union-attr]
        return self.password if rest.startswith(LOCK_PREFIX) else f"{scheme or ''}!{rest}"

    def unlocked_password(self) -> str:
        scheme, rest = _SCHEME.match(self.password).groups()  # type: ignore[union-attr]
        return f"{scheme or ''}{rest.removeprefix(LOCK_PREFIX)}"

    def with_disabled(self, disabled: bool) -> Account:
        pw = self.locked_password() if disabled else self.unlocked_password()
        return replace(self, password=pw, disabled=disabled)


def account_key(line: str) -> str | None:
    """The lower-cased user of an account line, or None for comments, blanks and junk."""
    stripped = line.strip()
    if not stripped or stripped.startswith("#") or ":" not in stripped:
        return None
    return stripped.split(":", 1)[0].strip().lower() or None


def parse_line(line: str) -> Account | None:
    """An account line as an Account (None for comments and blank lines)."""
    if account_key(line) is None:
        return None
    parts = line.rstrip("\n").split(":", 7)
    parts += [""] * (8 - len(parts))
    user, password, uid, gid, gecos, home, shell, extra_text = parts
    quota: int | None = None
    disabled = False
    extra: list[str] = []
    for item in extra_text.split():
        m = _QUOTA.match(item)
        if m:
            quota = int(m.group(1))
        elif item == NOLOGIN:
            disabled = True
        else:
            extra.append(item)
    _scheme, rest = _SCHEME.match(password).groups()  # type: ignore[union-attr]
    disabled = disabled or rest.startswith(LOCK_PREFIX)
    return Account(
        address=user.strip().lower(),
        password=password,
        uid=uid,
        gid=gid,
        display_name=gecos,
        home=home,
        shell=shell,
        quota_mb=quota,
        disabled=disabled,
        extra=tuple(extra),
    )


def format_line(account: Account) -> str:
    """The passwd-file line for ``account``."""
    extra = list(account.extra)
    if account.quota_mb is not None:
        extra.append(f"userdb_quota_rule=*:storage={account.quota_mb}M")
    if account.disabled:
        extra.append(NOLOGIN)
    fields = [
        account.address,
        account.password,
        account.uid,
        account.gid,
        account.display_name,
        account.home,
        account.shell,
        " ".join(extra),
    ]
    return ":".join(fields)
