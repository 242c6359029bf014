"""The mail backend behind a small interface: accounts, aliases, and what the mail system sees.

:class:`DovecotPostfixBackend` keeps accounts in a Dovecot passwd-file, the addresses Postfix
accepts in its ``virtual_mailbox_maps`` source file and aliases in ``virtual_alias_maps``,
rebuilding each map with ``postmap`` under the file's lock. It asks ``doveadm`` whether Dovecot
has loaded a change and ``postmap -q`` what Postfix will look up. An API backend (mailcow,
Stalwart) implements :class:`MailBackend` instead.
"""

from __future__ import annotations

import logging
import shlex
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pai_core.errors import BackendUnavailable, ConfigError, Conflict, NotFound
from pai_mail.accounts import Account, account_key, format_line, parse_line
from pai_mail.linefile import LineFile

__all__ = ["DovecotPostfixBackend", "DovecotView", "MailBackend"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DovecotView:
    """What Dovecot answers for a user right now (``doveadm user`` + ``doveadm auth lookup``)."""

    exists: bool
    userdb: dict[str, str]
    passdb: dict[str, str]


class MailBackend(Protocol):
    """What the mail service needs from a provider."""

    def list_accounts(self) -> list[Account]: ...

    def get_account(self, address: str) -> Account | None: ...

    def add_account(self, account: Account) -> None: ...

    def update_account(self, address: str, change: Callable[[Account], Account]) -> Account: ...

    def remove_account(self, address: str) -> Account: ...

    def mailbox_dir(self, account: Account) -> Path | None: ...

    def list_aliases(self) -> dict[str, str]: ...

    def add_alias(self, alias: str, target: str) -> None: ...

    def remove_alias(self, alias: str) -> str: ...

    def postfix_lookup(self, kind: str, key: str) -> str | None: ...

    def dovecot_view(self, address: str) -> DovecotView | None: ...

    def flush_cache(self, address: str) -> None: ...


def _map_key(line: str) -> str | None:
    stripped = line.strip()
    if not stripped or stripped.startswith("#"):
        return None
    return stripped.split()[0].lower()


class DovecotPostfixBackend:
    """Dovecot passwd-file + Postfix virtual maps on this machine."""

    def __init__(
        self,
        passwd_file: Path,
        *,
        mailbox_map: Path | None,
        alias_map: Path | None,
        postmap: str,
        doveadm: str | None,
        flush_auth_cache: bool = True,
        timeout_s: float = 15.0,
    ) -> None:
        self.passwd = LineFile(passwd_file)
        self.mailboxes = LineFile(mailbox_map) if mailbox_map else None
        self.aliases = LineFile(alias_map) if alias_map else None
        self.postmap = shlex.split(postmap)
        self.doveadm = shlex.split(doveadm) if doveadm else None
        self.flush_auth_cache = flush_auth_cache
        self.timeout_s = timeout_s

    # ------------------------------------------------------------------ accounts
    def list_accounts(self) -> list[Account]:
        return [a for line in self.passwd.read().lines if (a := parse_line(line)) is not None]

    def get_account(self, address: str) -> Account | None:
        return next((a for a in self.list_accounts() if a.address == address), None)

    def add_account(self, account: Account) -> None:
        def add(lines: list[str]) -> list[str]:
            if any(account_key(line) == account.address for line in lines):
                raise Conflict(
                    f"{account.address} already exists in {self.passwd.path}",
                    hint="Pick another address, or reset_password for the existing account; "
                    "nothing was changed.",
                )
            return [*lines, format_line(account)]

        self.passwd.update(add)
        if self.mailboxes is not None:
            try:
                self._map_set(self.mailboxes, account.address, _mailbox_value(account.address))
            except Exception:
                self._remove_line(account.address)
                raise

    def update_account(self, address: str, change: Callable[[Account], Account]) -> Account:
        updated: list[Account] = []

        def edit(lines: list[str]) -> list[str]:
            updated.clear()
            out = []
            for line in lines:
                if account_key(line) == address:
                    current = parse_line(line)
                    assert current is not None
                    new = change(current)
                    updated.append(new)
                    out.append(format_line(new))
                else:
                    out.append(line)
            if not updated:
                raise _not_found(address)
            return out

        self.passwd.update(edit)
        return updated[0]

    def remove_account(self, address: str) -> Account:
        removed = self._remove_line(address)
        if self.mailboxes is not None:
            self._map_delete(self.mailboxes, address)
        return removed

    def _remove_line(self, address: str) -> Account:
        removed: list[Account] = []

        def drop(lines: list[str]) -> list[str]:
            removed.clear()
            keep = []
            for line in lines:
                if account_key(line) == address:
                    acct = parse_line(line)
                    assert acct is not None
                    removed.append(acct)
                else:
                    keep.append(line)
            if not removed:
                raise _not_found(address)
            return keep

        self.passwd.update(drop)
        return removed[0]

    def mailbox_dir(self, account: Account) -> Path | None:
        if account.home:
            return Path(account.home)
        view = self.dovecot_view(account.address)
        if view is not None and view.userdb.get("home"):
            return Path(view.userdb["home"])
        return None

    # ------------------------------------------------------------------ aliases
    def _alias_file(self) -> LineFile:
        if self.aliases is None:
            raise ConfigError(
                "aliases need PAI_MAIL_POSTFIX_VIRTUAL_ALIAS_FILE (Postfix virtual_alias_maps)"
            )
        return self.aliases

    def list_aliases(self) -> dict[str, str]:
        if self.aliases is None:
            return {}
        out = {}
        for line in self.aliases.read().lines:
            key = _map_key(line)
            if key is not None and len(line.split()) >= 2:
                out[key] = line.split(None, 1)[1].strip()
        return out

    def add_alias(self, alias: str, target: str) -> None:
        self._map_set(self._alias_file(), alias, target, must_be_new=True)

    def remove_alias(self, alias: str) -> str:
        target = self.list_aliases().get(alias)
        if target is None:
            raise NotFound(f"no alias {alias}", hint="list_accounts shows the aliases.")
        self._map_delete(self._alias_file(), alias)
        return target

    # ------------------------------------------------------------------ Postfix maps
    def _map_set(self, mapfile: LineFile, key: str, value: str, must_be_new: bool = False) -> None:
        def put(lines: list[str]) -> list[str] | None:
            for i, line in enumerate(lines):
                if _map_key(line) == key:
                    if must_be_new:
                        raise Conflict(
                            f"{key} already exists in {mapfile.path}",
                            hint="Remove it first, or pick another; nothing was changed.",
                        )
                    if line.split(None, 1)[1:] == [value]:
                        return None
                    lines[i] = f"{key} {value}"
                    return lines
            return [*lines, f"{key} {value}"]

        mapfile.update(put, after_write=lambda: self._postmap(mapfile.path))

    def _map_delete(self, mapfile: LineFile, key: str) -> None:
        def drop(lines: list[str]) -> list[str] | None:
            keep = [line for line in lines if _map_key(line) != key]
            return keep if len(keep) != len(lines) else None

        mapfile.update(drop, after_write=lambda: self._postmap(mapfile.path))

    def _postmap(self, path: Path) -> None:
        self._run([*self.postmap, str(path)], what="postmap")

    def postfix_lookup(self, kind: str, key: str) -> str | None:
        """What Postfix finds for ``key`` in the ``kind`` map ("mailbox" or "alias")."""
        mapfile = self.mailboxes if kind == "mailbox" else self.aliases
        if mapfile is None:
            return None
        proc = self._run(
            [*self.postmap, "-q", key, str(mapfile.path)], what="postmap -q", ok=(0, 1)
        )
        return (proc.stdout.strip() or None) if proc.returncode == 0 else None

    # ------------------------------------------------------------------ Dovecot
    def dovecot_view(self, address: str) -> DovecotView | None:
        """Dovecot's answer for ``address`` now, or None when no doveadm is configured."""
        if self.doveadm is None:
            return None
        user = self._run([*self.doveadm, "user", address], what="doveadm user", ok=(0, 67))
        if user.returncode == 67:
            return DovecotView(False, {}, {})
        userdb = dict(line.split("\t", 1) for line in user.stdout.splitlines()[1:] if "\t" in line)
        auth = self._run(
            [*self.doveadm, "auth", "lookup", address], what="doveadm auth lookup", ok=(0, 67)
        )
        passdb = {}
        for line in auth.stdout.splitlines()[1:]:
            key, sep, value = line.partition(":")
            if sep:
                passdb[key.strip()] = value.strip()
        return DovecotView(True, userdb, passdb)

    def flush_cache(self, address: str) -> None:
        if self.doveadm is not None and self.flush_auth_cache:
            self._run([*self.doveadm, "auth", "cache", "flush", address], what="doveadm flush")

    def _run(
        self, cmd: list[str], *, what: str, ok: tuple[int, ...] = (0,)
    ) -> subprocess.CompletedProcess[str]:
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, timeout=self.timeout_s, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BackendUnavailable(f"{what} could not run ({cmd[0]}): {exc}") from exc
        if proc.returncode not in ok:
            detail = (proc.stderr or proc.stdout).strip()[-500:]
            raise BackendUnavailable(f"{what} failed with exit {proc.returncode}: {detail}")
        return proc


def _mailbox_value(address: str) -> str:
    local, _, domain = address.rpartition("@")
    return f"{domain}/{local}/"


def _not_found(address: str) -> NotFound:
    return NotFound(f"no account {address}", hint="list_accounts shows the accounts.")
