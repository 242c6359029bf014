"""Structured results of the Mail tools (their output schemas). None of them holds a password
except :class:`CreateResult` and :class:`ResetResult`, which return a generated one once."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from pai_core.memory.record import MemoryNote

__all__ = [
    "AccountInfo",
    "AccountList",
    "AliasResult",
    "ChangeResult",
    "Check",
    "CreateResult",
    "DeleteResult",
    "ResetResult",
    "ValidateResult",
]


class Check(BaseModel):
    """One observation made from outside after a change (a proof step, a lookup)."""

    step: str = Field(description="e.g. dovecot-loaded, imap-login, smtp-auth, send, delivery.")
    ok: bool
    ms: float = Field(description="How long the step took.")
    detail: str = ""


class AccountInfo(BaseModel):
    address: str
    display_name: str
    quota_mb: int | None = Field(description="Storage quota in MiB (None: Dovecot's default).")
    disabled: bool
    managed_domain: bool = Field(description="The domain is one this server manages.")
    home: str | None = Field(description="Mailbox home directory.")
    aliases: list[str] = Field(default_factory=list, description="Aliases delivering here.")


class AccountList(BaseModel):
    accounts: list[AccountInfo]
    total: int
    offset: int
    aliases: dict[str, str] = Field(description="Every alias and its target address.")
    foreign_lines: int = Field(
        description="Comments and other lines of the passwd-file kept untouched."
    )


class CreateResult(BaseModel):
    address: str
    password: str | None = Field(
        description="The generated password: shown this once, stored nowhere in clear. None when "
        "the password came from a file."
    )
    password_source: Literal["generated", "file"]
    account: AccountInfo
    proof: list[Check] = Field(description="Every step that proved the account works.")
    audit_id: int
    memory: MemoryNote


class ResetResult(BaseModel):
    address: str
    password: str | None = Field(description="The new generated password, shown this once.")
    password_source: Literal["generated", "file"]
    proof: list[Check]
    audit_id: int
    memory: MemoryNote


class ChangeResult(BaseModel):
    address: str
    action: Literal["set_quota", "disable", "enable"]
    changed: bool = Field(description="False when the account already was in that state.")
    account: AccountInfo
    verification: list[Check] = Field(description="How the change was observed in Dovecot.")
    audit_id: int
    memory: MemoryNote


class DeleteResult(BaseModel):
    address: str
    archive: str | None = Field(description="Tarball of the mailbox (None if not archived).")
    archive_bytes: int
    archived_files: int
    aliases_removed: list[str]
    verification: list[Check]
    audit_id: int
    memory: MemoryNote


class AliasResult(BaseModel):
    alias: str
    target: str
    action: Literal["add_alias", "remove_alias"]
    verification: list[Check]
    audit_id: int
    memory: MemoryNote


class ValidateResult(BaseModel):
    address: str
    ok: bool = Field(description="Every proof step passed.")
    failed_step: str | None
    proof: list[Check]
