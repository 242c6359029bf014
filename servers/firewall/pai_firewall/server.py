"""The Firewall MCP server: tool declarations only; logic lives in :mod:`pai_firewall.service`."""

from __future__ import annotations

import logging
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated, Any

from mcp.server import MCPServer
from pydantic import Field

from pai_core.annotations import READ_ONLY, tool_annotations
from pai_core.app import add_health_tool, create_server, tool
from pai_firewall import __version__
from pai_firewall.evaluate import PacketSpec
from pai_firewall.models import (
    ApplyResult,
    ChangeIn,
    ConfirmResult,
    ExplainResult,
    HistoryPage,
    PlanResult,
    RollbackResult,
    RulesPage,
)
from pai_firewall.settings import FirewallSettings

if TYPE_CHECKING:
    from pai_firewall.service import FirewallService

__all__ = ["build_server", "build_service"]

log = logging.getLogger(__name__)

INSTRUCTIONS = """Manages one nftables table (never anything else) under a constitution of
invariants. Rules are structured: never write nft syntax. Always plan_change first and show the
user the diff and the verdict per invariant; then apply_change(plan_id, confirm_within_s). After
apply, check that you can still reach what you need and call confirm_change(change_id) before
the deadline, or the previous table comes back by itself. explain(packet) says which rule
decides a packet; history lists what was done."""

IdArg = Annotated[str, Field(description="An id returned by this server.")]


def _probe(settings: FirewallSettings) -> dict[str, Any]:
    from pai_firewall.constitution import Constitution, ConstitutionError

    problems = []
    nft = shutil.which(settings.nft_binary) or shutil.which(settings.nft_binary, path="/usr/sbin")
    if nft is None:
        problems.append(f"{settings.nft_binary} not found: apt-get install nftables")
    try:
        Constitution.load(settings.constitution)
    except ConstitutionError as exc:
        problems.append(f"{exc}: every change is refused")
    return {
        "backend": f"nftables:table {settings.table}",
        "configured": not problems,
        "problems": problems,
        "details": {"nft": nft, "netns": settings.netns, "constitution": settings.constitution},
    }


def build_service(settings: FirewallSettings) -> FirewallService:
    """The service for these settings; the constitution is read here, once."""
    from pai_core.audit import AuditLog
    from pai_core.memory.record import ChangeRecorder
    from pai_firewall.backend import NftRunner
    from pai_firewall.constitution import Constitution, ConstitutionError
    from pai_firewall.service import PREDICATES, FirewallService

    constitution, error = None, ""
    try:
        constitution = Constitution.load(settings.constitution)
    except ConstitutionError as exc:
        error = str(exc)
        log.warning("firewall: %s; every change will be refused", error)
    nft = shutil.which(settings.nft_binary) or shutil.which(settings.nft_binary, path="/usr/sbin")
    ip = shutil.which(settings.ip_binary) or shutil.which(settings.ip_binary, path="/usr/sbin")
    assert settings.audit_log is not None
    return FirewallService(
        table=settings.table_ref,
        runner=NftRunner(
            table=settings.table,
            netns=settings.netns,
            nft=nft or settings.nft_binary,
            ip=ip or settings.ip_binary,
        ),
        constitution=constitution,
        constitution_error=error,
        data_dir=settings.data_path,
        audit=AuditLog(settings.audit_log),
        recorder=ChangeRecorder.from_settings(settings, predicates=PREDICATES),
        plan_ttl_s=settings.plan_ttl_s,
        default_confirm_s=settings.default_confirm_s,
        max_confirm_s=settings.max_confirm_s,
    )


def build_server(settings: FirewallSettings) -> MCPServer[Any]:
    """Compose the server from its settings (the composition root calls this)."""
    cache: dict[str, FirewallService] = {}

    def svc() -> FirewallService:
        if "s" not in cache:
            cache["s"] = build_service(settings)
        return cache["s"]

    @asynccontextmanager
    async def lifespan(_server: Any) -> AsyncIterator[dict[str, Any]]:
        # A change left pending by a server that died: roll it back if expired, else guard it.
        import anyio

        from pai_firewall.deadman import recover

        try:
            done = await anyio.to_thread.run_sync(recover, settings.data_path)
        except Exception as exc:  # start anyway: the tools report the backend's state
            log.warning("firewall: start-up recovery failed: %s", exc)
        else:
            if done:
                log.info("firewall: %s", done)
        yield {}

    server = create_server(
        "firewall",
        version=__version__,
        instructions=INSTRUCTIONS,
        settings=settings,
        lifespan=lifespan,
    )
    add_health_tool(server, version=__version__, settings=settings, probe=lambda: _probe(settings))

    @tool(server, READ_ONLY)
    def list_rules(
        chain: Annotated[
            str | None, Field(description="Only this chain: input, forward or output.")
        ] = None,
        limit: Annotated[int, Field(ge=1, le=1000, description="Page size.")] = 200,
        offset: Annotated[int, Field(ge=0, description="Rules to skip.")] = 0,
    ) -> RulesPage:
        """List the owned table's rules as the kernel has them (nft -j), in evaluation order,
        with chain policies, expiry, anything foreign in the table, and a pending change."""
        return svc().list_rules(chain, offset, limit)

    @tool(server, tool_annotations(read_only=False, idempotent=True))
    def plan_change(
        changes: Annotated[
            list[ChangeIn], Field(description="Changes, applied in order to the current table.")
        ],
    ) -> PlanResult:
        """Plan changes to the owned table: validates every rule, computes the resulting table
        and its diff, and evaluates every invariant of the constitution on it (a rule that
        blocks the management port indirectly is caught). Nothing is applied. Returns a
        plan_id; `allowed` false means apply_change will refuse it (see the verdicts)."""
        return svc().plan(changes)

    @tool(server, tool_annotations(read_only=False, destructive=True))
    def apply_change(
        plan_id: IdArg,
        confirm_within_s: Annotated[
            int | None,
            Field(ge=1, description="Seconds to confirm before automatic rollback."),
        ] = None,
    ) -> ApplyResult:
        """Apply an allowed plan: nft -c, then ONE atomic nft -f, then a self-check on the live
        table (and the configured probes, for real). Then a dead-man timer runs: call
        confirm_change(change_id) before confirm_by or the previous table is restored, even if
        this server dies. If the table changed since the plan, nothing is changed."""
        return svc().apply(plan_id, confirm_within_s)

    @tool(server, tool_annotations(read_only=False, idempotent=True))
    def confirm_change(change_id: IdArg) -> ConfirmResult:
        """Keep an applied change: stops its dead-man timer and records it in memory.
        Too late (after confirm_by) means it was rolled back: plan and apply again."""
        return svc().confirm(change_id)

    @tool(server, tool_annotations(read_only=False, destructive=True))
    def rollback(
        to: Annotated[
            str | None,
            Field(
                description="A change_id: restore the table as it was before that change "
                "(default: the pending change, else the last confirmed one)."
            ),
        ] = None,
    ) -> RollbackResult:
        """Restore the table atomically: undo the pending change now, or go back to the table
        as it was before an earlier change (checked against the constitution first)."""
        return svc().rollback(to)

    @tool(server, READ_ONLY)
    def explain(
        packet: Annotated[
            PacketSpec, Field(description="A packet; a CIDR or port range means every member.")
        ],
    ) -> ExplainResult:
        """Say which rule of the live table decides this packet (accept, drop or reject) and
        why; for a class of packets, each deciding rule with an example packet."""
        return svc().explain(packet)

    @tool(server, READ_ONLY)
    def history(
        limit: Annotated[int, Field(ge=1, le=500, description="Entries to return.")] = 50,
        offset: Annotated[int, Field(ge=0, description="Entries to skip.")] = 0,
    ) -> HistoryPage:
        """What was planned, applied, confirmed and rolled back on this table, newest first,
        from the shared audit log (rollbacks by the dead-man timer included)."""
        return svc().history(limit, offset)

    return server
