"""The Mail MCP server: tool declarations only; logic lives in :mod:`pai_mail.service`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from mcp.server import MCPServer
from pydantic import Field

from pai_core.annotations import READ_ONLY, tool_annotations
from pai_core.app import add_health_tool, create_server, tool
from pai_mail import __version__
from pai_mail.compose import build_service, probe
from pai_mail.models import (
    AccountList,
    AliasResult,
    ChangeResult,
    CreateResult,
    DeleteResult,
    ResetResult,
    ValidateResult,
)
from pai_mail.settings import MailSettings

if TYPE_CHECKING:
    from pai_mail.service import MailService

__all__ = ["build_server", "build_service"]  # build_service: from pai_mail.compose

INSTRUCTIONS = """Provisions mail accounts on Dovecot (passwd-file) + Postfix and proves each one.
create_account and reset_password return the password ONCE: give it to the user, never store
it. Every account change is proven from outside (IMAP LOGIN, SMTP AUTH, a test message that
arrives and is deleted) and undone when the proof fails; the error names the failed step.
Passwords you supply go by reference to a file (password_file), never as a tool argument."""

AddressArg = Annotated[str, Field(description="Mail address, e.g. 'alice@example.com'.")]
QuotaArg = Annotated[
    str | None, Field(description="Storage quota such as '512M' or '2G' (default: the server's).")
]
PasswordFileArg = Annotated[
    str | None,
    Field(description="Path of a file whose first line is the password (default: generate one)."),
]


def build_server(settings: MailSettings) -> MCPServer[Any]:
    """Compose the server from its settings (the composition root calls this)."""
    server = create_server(
        "mail", version=__version__, instructions=INSTRUCTIONS, settings=settings
    )
    add_health_tool(server, version=__version__, settings=settings, probe=lambda: probe(settings))
    cache: dict[str, MailService] = {}

    def svc() -> MailService:
        # Built on first use, so an unconfigured server still starts and reports health.
        if "s" not in cache:
            cache["s"] = build_service(settings)
        return cache["s"]

    @tool(server, READ_ONLY)
    def list_accounts(
        domain: Annotated[str | None, Field(description="Only this domain.")] = None,
        limit: Annotated[int, Field(ge=1, le=1000, description="Page size.")] = 200,
        offset: Annotated[int, Field(ge=0, description="Accounts to skip.")] = 0,
    ) -> AccountList:
        """List the accounts in the passwd-file (quota, disabled, aliases) and every alias.
        Never shows password hashes."""
        return svc().list_accounts(domain, limit, offset)

    @tool(server, tool_annotations(read_only=False, open_world=True))
    def create_account(
        address: AddressArg,
        quota: QuotaArg = None,
        display_name: Annotated[str | None, Field(description="Shown name, e.g. 'Alice'.")] = None,
        password_file: PasswordFileArg = None,
    ) -> CreateResult:
        """Create a mail account and prove it works: Dovecot loads it, IMAP LOGIN and SMTP AUTH
        succeed, a test message arrives in its INBOX and is deleted.

        Returns the generated password once (give it to the user; it is stored nowhere in
        clear). If any proof step fails the account is removed again and the error names the
        step. Refuses invalid addresses, unmanaged domains, duplicates and out-of-range quotas.
        """
        return svc().create_account(address, quota, display_name, password_file)

    @tool(server, tool_annotations(read_only=False, destructive=True, open_world=True))
    def reset_password(address: AddressArg, password_file: PasswordFileArg = None) -> ResetResult:
        """Give an account a new password (generated, or from a file) and prove it like
        create_account; on failure the old password is put back. Returns a generated password
        once."""
        return svc().reset_password(address, password_file)

    @tool(server, tool_annotations(read_only=False, idempotent=True))
    def set_quota(
        address: AddressArg,
        quota: Annotated[str, Field(description="Storage quota such as '512M' or '2G'.")],
    ) -> ChangeResult:
        """Set an account's storage quota; verified by asking Dovecot (doveadm user)."""
        return svc().set_quota(address, quota)

    @tool(server, tool_annotations(read_only=False, destructive=True, idempotent=True))
    def disable_account(address: AddressArg) -> ChangeResult:
        """Lock an account: its password stops working for IMAP and SMTP AUTH (mail is still
        delivered and kept). Undo with enable_account."""
        return svc().set_disabled(address, True)

    @tool(server, tool_annotations(read_only=False, idempotent=True))
    def enable_account(address: AddressArg) -> ChangeResult:
        """Unlock a disabled account: its old password works again."""
        return svc().set_disabled(address, False)

    @tool(server, tool_annotations(read_only=False, destructive=True))
    def delete_account(
        address: AddressArg,
        archive: Annotated[
            bool, Field(description="Archive the mailbox to a tarball first (default true).")
        ] = True,
    ) -> DeleteResult:
        """Delete an account, its mailbox and the aliases pointing to it. The mailbox is first
        archived to a tarball (its path is returned) unless archive=false."""
        return svc().delete_account(address, archive)

    @tool(server, tool_annotations(read_only=False))
    def add_alias(
        alias: Annotated[str, Field(description="New address in a managed domain.")],
        target: Annotated[str, Field(description="Existing account (or outside address).")],
    ) -> AliasResult:
        """Deliver mail for ``alias`` to ``target`` (Postfix virtual alias), verified with
        postmap -q."""
        return svc().add_alias(alias, target)

    @tool(server, tool_annotations(read_only=False, destructive=True, idempotent=True))
    def remove_alias(
        alias: Annotated[str, Field(description="The alias address to remove.")],
    ) -> AliasResult:
        """Remove an alias (mail to it is then refused)."""
        return svc().remove_alias(alias)

    @tool(server, tool_annotations(read_only=False, idempotent=True, open_world=True))
    def validate_account(
        address: AddressArg,
        password_file: Annotated[
            str, Field(description="Path of a file whose first line is the account's password.")
        ],
    ) -> ValidateResult:
        """Re-run the proof for an existing account now: IMAP LOGIN, SMTP AUTH, a test message
        delivered and deleted. Changes nothing else; ok=false names the failed step."""
        return svc().validate_account(address, password_file)

    return server
