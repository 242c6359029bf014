"""Structured results of the DNS tools (their output schemas)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from pai_core.memory.record import MemoryNote

__all__ = [
    "ApplyResult",
    "ChangeIn",
    "PlanResult",
    "RecordSet",
    "RecordsPage",
    "ServerCheck",
    "Verification",
    "ZoneInfo",
    "ZoneList",
]


class ChangeIn(BaseModel):
    """One change to one RRset."""

    action: Literal["set", "add", "delete"] = Field(
        "set",
        description="set: the RRset becomes exactly `values`; add: add `values`; "
        "delete: remove the RRset, or only `values` when given.",
    )
    name: str = Field(description="Owner name, relative to the zone ('www', '@') or absolute.")
    type: str = Field(description="A, AAAA, CNAME, MX, TXT, SRV, CAA, NS or PTR.")
    ttl: int | None = Field(None, description="TTL in seconds (default: keep, or 300).")
    values: list[str] = Field(
        default_factory=list, description="Rdata in presentation format, e.g. '10 mail.example.'."
    )


class RecordSet(BaseModel):
    name: str
    type: str
    ttl: int
    values: list[str]


class ZoneInfo(BaseModel):
    zone: str
    rrsets: int
    serial: int | None


class ZoneList(BaseModel):
    zones: list[ZoneInfo]


class RecordsPage(BaseModel):
    zone: str
    total: int
    offset: int
    records: list[RecordSet]


class RRsetChange(BaseModel):
    name: str
    type: str
    before: RecordSet | None
    after: RecordSet | None


class PlanResult(BaseModel):
    plan_id: str = Field(description="Pass to apply_change.")
    zone: str
    checksum: str = Field(description="SHA-256 over the zone, changes and before/after RRsets.")
    expires_in_s: int
    noop: bool = Field(description="True when the zone already matches: apply changes nothing.")
    rrsets: list[RRsetChange] = Field(description="Exact before/after of every touched RRset.")
    findings: list[dict[str, str]] = Field(description="Policy notes (e.g. a forced share limit).")


class ServerCheck(BaseModel):
    server: str
    ok: bool
    serial: int | None
    problems: list[str]


class Verification(BaseModel):
    ok: bool = Field(description="Every authoritative server answers as expected.")
    servers: list[ServerCheck]
    serials_agree: bool
    disagreeing: list[str]


class ApplyResult(BaseModel):
    plan_id: str
    status: Literal["applied", "applied-unverified", "noop"] = Field(
        description="applied: sent and verified everywhere; applied-unverified: the primary "
        "accepted it but some server disagrees (see verification)."
    )
    verified: bool
    verification: Verification
    memory: MemoryNote | None = Field(
        None, description="Whether the verified change was recorded in the shared memory."
    )
