"""The DNS MCP server: tool declarations only; logic lives in :mod:`pai_dns.service`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from mcp.server import MCPServer
from pydantic import Field

from pai_core.annotations import READ_ONLY, tool_annotations
from pai_core.app import add_health_tool, create_server, tool
from pai_core.audit import AuditLog
from pai_core.errors import ConfigError
from pai_core.log import register_secret
from pai_dns import __version__
from pai_dns.models import (
    ApplyResult,
    ChangeIn,
    PlanResult,
    RecordSet,
    RecordsPage,
    Verification,
    ZoneList,
)
from pai_dns.settings import DnsSettings

if TYPE_CHECKING:  # dnspython loads with the first tool call, not at start-up
    from pai_dns.service import DnsService

__all__ = ["build_server", "build_service"]

INSTRUCTIONS = """Changes DNS records safely over RFC 2136 + TSIG.
Always plan_change first and show the user the before/after; then apply_change(plan_id).
apply_change sends one atomic UPDATE that fails cleanly if the zone changed since the plan,
then verifies the result on every authoritative server. Nothing is applied without a plan."""

ZoneArg = Annotated[str, Field(description="Zone, e.g. 'example.com' (must be managed).")]


def _probe(settings: DnsSettings) -> dict[str, Any]:
    problems = []
    if not settings.zones:
        problems.append("no zones: set PAI_DNS_ZONES")
    if not settings.server:
        problems.append("no primary server: set PAI_DNS_SERVER")
    if not settings.tsig_key_name or not (settings.tsig_secret or settings.tsig_secret_file):
        problems.append("no TSIG key: set PAI_DNS_TSIG_KEY_NAME and PAI_DNS_TSIG_SECRET(_FILE)")
    backend = f"rfc2136:{settings.server}:{settings.port}" if settings.server else "rfc2136 (unset)"
    return {
        "backend": backend,
        "configured": not problems,
        "problems": problems,
        "details": {"zones": settings.zones, "verify_servers": settings.verify_servers},
    }


def build_service(settings: DnsSettings) -> DnsService:
    """The service for configured settings (ConfigError naming what is missing otherwise)."""
    from pai_core.memory.record import ChangeRecorder
    from pai_dns.backend import Endpoint, Rfc2136Backend
    from pai_dns.memory import PREDICATES
    from pai_dns.policy import Policy
    from pai_dns.service import DnsService, PlanStore

    problems = _probe(settings)["problems"]
    if problems:
        raise ConfigError("the DNS server is not configured: " + "; ".join(problems))
    secret = settings.secret()
    assert secret is not None and settings.server and settings.tsig_key_name
    register_secret(secret)
    backend = Rfc2136Backend(
        Endpoint(settings.server, settings.port),
        key_name=settings.tsig_key_name,
        secret=secret,
        algorithm=settings.tsig_algorithm,
        timeout=settings.timeout_s,
        extra_servers=[Endpoint.parse(s, settings.port) for s in settings.verify_servers],
    )
    policy = Policy(
        zones=tuple(settings.zones),
        min_ttl=settings.min_ttl,
        max_ttl=settings.max_ttl,
        allow_apex_mail_records=settings.allow_apex_mail_records,
        max_change_share=settings.max_change_share,
        min_records_for_share=settings.min_records_for_share,
    )
    assert settings.audit_log is not None
    return DnsService(
        backend=backend,
        policy=policy,
        plans=PlanStore(settings.data_path / "plans", settings.plan_ttl_s),
        audit=AuditLog(settings.audit_log),
        verify_timeout_s=settings.verify_timeout_s,
        recorder=ChangeRecorder.from_settings(settings, predicates=PREDICATES),
    )


def build_server(settings: DnsSettings) -> MCPServer[Any]:
    """Compose the server from its settings (the composition root calls this)."""
    server = create_server("dns", version=__version__, instructions=INSTRUCTIONS, settings=settings)
    add_health_tool(server, version=__version__, settings=settings, probe=lambda: _probe(settings))
    cache: dict[str, DnsService] = {}

    def svc() -> DnsService:
        # Built on first use, so an unconfigured server still starts and reports health.
        if "s" not in cache:
            cache["s"] = build_service(settings)
        return cache["s"]

    @tool(server, READ_ONLY)
    def list_zones() -> ZoneList:
        """List the zones this server manages, with RRset counts and SOA serials (via AXFR)."""
        return ZoneList.model_validate({"zones": svc().list_zones()})

    @tool(server, READ_ONLY)
    def list_records(
        zone: ZoneArg,
        name: Annotated[str | None, Field(description="Only this owner name.")] = None,
        type: Annotated[str | None, Field(description="Only this record type.")] = None,
        limit: Annotated[int, Field(ge=1, le=1000, description="Page size.")] = 200,
        offset: Annotated[int, Field(ge=0, description="Rows to skip.")] = 0,
    ) -> RecordsPage:
        """List a zone's records as the primary serves them (paginated)."""
        return RecordsPage.model_validate(svc().list_records(zone, name, type, limit, offset))

    @tool(server, tool_annotations(read_only=False, idempotent=True))
    def plan_change(
        zone: ZoneArg,
        changes: Annotated[list[ChangeIn], Field(description="Changes, one per RRset.")],
        force: Annotated[
            bool, Field(description="Allow a plan above the change-share limit (recorded).")
        ] = False,
    ) -> PlanResult:
        """Plan record changes: validates them, checks policy, and shows the exact before/after.

        Nothing is sent to DNS. A refused plan names the policy rule. Returns a plan_id to pass
        to apply_change (plans expire after a while).
        """
        plan = svc().plan(zone, [c.model_dump() for c in changes], force=force)
        return _plan_result(plan, svc().plans.ttl_s)

    @tool(server, tool_annotations(read_only=False, destructive=True, open_world=True))
    def apply_change(
        plan_id: Annotated[str, Field(description="The plan_id from plan_change.")],
    ) -> ApplyResult:
        """Apply a plan as ONE atomic UPDATE, then verify it on every authoritative server.

        The UPDATE carries prerequisites that every touched RRset is still what the plan saw:
        if anything changed since, nothing is changed and the error says to plan again.
        status 'applied-unverified' means the primary took it but a server disagrees.
        """
        return ApplyResult.model_validate(svc().apply(plan_id))

    @tool(server, tool_annotations(read_only=False, idempotent=True))
    def delete_record(
        zone: ZoneArg,
        name: Annotated[str, Field(description="Owner name ('www', '@', or absolute).")],
        type: Annotated[str, Field(description="Record type.")],
        values: Annotated[
            list[str] | None, Field(description="Only these values (default: the whole RRset).")
        ] = None,
    ) -> PlanResult:
        """Plan the deletion of an RRset (or some of its values); apply it with apply_change."""
        change = {"action": "delete", "name": name, "type": type, "values": values or []}
        return _plan_result(svc().plan(zone, [change]), svc().plans.ttl_s)

    @tool(server, tool_annotations(read_only=True, open_world=True))
    def verify_record(
        zone: ZoneArg,
        name: Annotated[str, Field(description="Owner name.")],
        type: Annotated[str, Field(description="Record type.")],
        expected: Annotated[
            list[str] | None, Field(description="Expected values; empty means 'must not exist'.")
        ] = None,
        ttl: Annotated[int | None, Field(description="Expected TTL (optional).")] = None,
    ) -> Verification:
        """Ask every authoritative server directly (NS set + primary) whether the RRset is as
        expected; retries with backoff up to a deadline and reports per server and serial."""
        return Verification.model_validate(svc().verify_record(zone, name, type, expected, ttl))

    return server


def _plan_result(plan: dict[str, Any], ttl: int) -> PlanResult:
    before = {(b["name"], b["type"]): b["rrset"] for b in plan["before"]}
    rows = [
        {
            "name": a["name"],
            "type": a["type"],
            "before": before[(a["name"], a["type"])],
            "after": a["rrset"],
        }
        for a in plan["after"]
    ]
    return PlanResult(
        plan_id=plan["plan_id"],
        zone=plan["zone"],
        checksum=plan["checksum"],
        expires_in_s=ttl,
        noop=plan["noop"],
        rrsets=[_row(r) for r in rows],
        findings=plan["findings"],
    )


def _row(r: dict[str, Any]) -> Any:
    from pai_dns.models import RRsetChange

    return RRsetChange(
        name=r["name"],
        type=r["type"],
        before=RecordSet(**r["before"]) if r["before"] else None,
        after=RecordSet(**r["after"]) if r["after"] else None,
    )
