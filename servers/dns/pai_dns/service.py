"""Plan → policy → apply (one UPDATE with prerequisites) → verify on every authoritative server.

Plans are stored as JSON files under ``<data_dir>/plans`` with an expiry, so a plan made by one
server process can be applied by another. A plan records the exact before/after RRsets it saw;
its checksum covers them, and apply refuses a plan whose file no longer matches its checksum.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pai_core.audit import AuditLog
from pai_core.errors import Conflict, InvalidInput, NotFound
from pai_core.memory.record import ChangeRecorder, MemoryNote
from pai_dns.backend import DnsBackend, QueryAnswer, TransferRefused
from pai_dns.memory import change_facts
from pai_dns.policy import Policy
from pai_dns.records import Change, RRset, absolute_name, canonical_rdata, parse_change

__all__ = ["DnsService", "PlanStore"]

log = logging.getLogger(__name__)
MAX_CHANGES = 1000


def _after(current: RRset | None, ch: Change, default_ttl: int) -> RRset | None:
    if ch.action == "set":
        return RRset(
            ch.name, ch.rtype, ch.ttl or (current.ttl if current else default_ttl), ch.values
        )
    if ch.action == "add":
        values = tuple(sorted(set(current.values if current else ()) | set(ch.values)))
        ttl = ch.ttl or (current.ttl if current else default_ttl)
        return RRset(ch.name, ch.rtype, ttl, values)
    if not ch.values or current is None:
        return None
    remaining = tuple(v for v in current.values if v not in ch.values)
    return RRset(ch.name, ch.rtype, current.ttl, remaining) if remaining else None


def _planned_ttl(after: RRset | None, asked: int | None) -> int | None:
    return after.ttl if after is not None else asked


def _rr(d: dict[str, Any] | None) -> RRset | None:
    if d is None:
        return None
    return RRset(d["name"], d["type"], int(d["ttl"]), tuple(d["values"]))


class PlanStore:
    """Plans as JSON files, written atomically, expired after ``ttl_s``."""

    def __init__(self, root: Path, ttl_s: int) -> None:
        self.root = root
        self.ttl_s = ttl_s

    def save(self, plan: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / f"{plan['plan_id']}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(plan, sort_keys=True))
        with tmp.open("rb") as fh:
            os.fsync(fh.fileno())
        tmp.replace(path)

    def load(self, plan_id: str) -> dict[str, Any]:
        if not plan_id.replace("-", "").isalnum():
            raise InvalidInput("plan_id is malformed", field="plan_id")
        path = self.root / f"{plan_id}.json"
        try:
            plan: dict[str, Any] = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise NotFound(
                f"no plan {plan_id}", hint="Plans expire; make a new one with plan_change."
            ) from exc
        if time.time() > plan["expires_at"]:
            path.unlink(missing_ok=True)
            raise Conflict(f"plan {plan_id} expired", hint="Make a new plan with plan_change.")
        if _checksum(plan) != plan["checksum"]:
            raise Conflict(f"plan {plan_id} does not match its checksum", hint="Plan again.")
        return plan

    def consume(self, plan_id: str) -> None:
        (self.root / f"{plan_id}.json").unlink(missing_ok=True)


def _checksum(plan: dict[str, Any]) -> str:
    body = {k: plan[k] for k in ("zone", "changes", "before", "after", "force")}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


@dataclass
class DnsService:
    backend: DnsBackend
    policy: Policy
    plans: PlanStore
    audit: AuditLog
    verify_timeout_s: float = 15.0
    default_ttl: int = 300
    recorder: ChangeRecorder | None = None

    # ---------------------------------------------------------------- reading
    def list_zones(self) -> list[dict[str, Any]]:
        out = []
        for zone in self.policy.zones:
            canon = self.policy.check_zone(zone)
            records = self.backend.read_zone(canon)
            soa = records.get((canon, "SOA"))
            serial = int(soa.values[0].split()[2]) if soa else None
            out.append({"zone": canon, "rrsets": len(records), "serial": serial})
        return out

    def list_records(
        self,
        zone: str,
        name: str | None = None,
        rtype: str | None = None,
        limit: int = 200,
        offset: int = 0,
    ) -> dict[str, Any]:
        canon = self.policy.check_zone(zone)
        records = self.backend.read_zone(canon)
        wanted_name = absolute_name(name, canon) if name else None
        rows = [
            rr.as_dict()
            for key, rr in sorted(records.items())
            if (wanted_name is None or key[0] == wanted_name)
            and (rtype is None or key[1] == rtype.upper())
        ]
        return {
            "zone": canon,
            "total": len(rows),
            "offset": offset,
            "records": rows[offset : offset + limit],
        }

    # ---------------------------------------------------------------- planning
    def plan(
        self, zone: str, changes: list[dict[str, Any]], *, force: bool = False
    ) -> dict[str, Any]:
        canon = self.policy.check_zone(zone)
        if not changes:
            raise InvalidInput("changes is empty", field="changes")
        if len(changes) > MAX_CHANGES:
            raise InvalidInput(f"at most {MAX_CHANGES} changes in one plan", field="changes")
        parsed = [parse_change(c, canon, index=i) for i, c in enumerate(changes)]
        seen: set[tuple[str, str]] = set()
        for i, ch in enumerate(parsed):
            if ch.key() in seen:
                raise InvalidInput(
                    f"changes[{i}] touches {ch.name} {ch.rtype} again",
                    field=f"changes[{i}]",
                    hint="Combine changes to one RRset into one change.",
                )
            seen.add(ch.key())
        try:
            current = self.backend.read_zone(canon)
            whole_zone = True
        except TransferRefused:
            # No AXFR for our key: read just the touched names, by targeted queries.
            current = self.backend.read_names(canon, {ch.name for ch in parsed})
            whole_zone = False
        before = {ch.key(): current.get(ch.key()) for ch in parsed}
        after = {ch.key(): _after(before[ch.key()], ch, self.default_ttl) for ch in parsed}
        findings = self.policy.check(
            canon, parsed, current, after, force=force, zone_size_known=whole_zone
        )
        effective = [ch for ch in parsed if before[ch.key()] != after[ch.key()]]
        plan: dict[str, Any] = {
            "plan_id": secrets.token_hex(8),
            "zone": canon,
            "created_at": time.time(),
            "expires_at": time.time() + self.plans.ttl_s,
            "force": force,
            "changes": [
                {
                    "action": c.action,
                    "name": c.name,
                    "type": c.rtype,
                    "ttl": c.ttl,
                    "values": list(c.values),
                }
                for c in parsed
            ],
            "before": [_dump(k, before[k]) for k in sorted(before)],
            "after": [_dump(k, after[k]) for k in sorted(after)],
            "findings": [{"rule": f.rule, "message": f.message} for f in findings],
            "noop": not effective,
        }
        plan["checksum"] = _checksum(plan)
        self.plans.save(plan)
        return plan

    # ---------------------------------------------------------------- applying
    def apply(self, plan_id: str) -> dict[str, Any]:
        plan = self.plans.load(plan_id)
        zone = plan["zone"]
        expected = {(b["name"], b["type"]): _rr(b["rrset"]) for b in plan["before"]}
        wanted = {(a["name"], a["type"]): _rr(a["rrset"]) for a in plan["after"]}
        # The UPDATE carries exactly the TTL the plan showed (a change without one keeps the
        # RRset's current TTL), never a default of the wire layer.
        changes = [
            Change(
                c["action"],
                c["name"],
                c["type"],
                _planned_ttl(wanted[(c["name"], c["type"])], c["ttl"]),
                tuple(c["values"]),
            )
            for c in plan["changes"]
        ]
        entry: dict[str, Any] = {
            "plan_id": plan_id,
            "zone": zone,
            "checksum": plan["checksum"],
            "changes": plan["changes"],
            "force": plan["force"],
        }
        if plan["noop"]:
            self.plans.consume(plan_id)
            verification = self.verify_many(zone, wanted)
            self.audit.append("dns.apply", **entry, result="noop", verification=verification)
            return {
                "plan_id": plan_id,
                "status": "noop",
                "verified": verification["ok"],
                "verification": verification,
            }
        try:
            self.backend.apply(zone, changes, expected)
        except Exception as exc:
            self.audit.append("dns.apply", **entry, result="refused", error=str(exc))
            raise
        self.plans.consume(plan_id)
        verification = self.verify_many(zone, wanted)
        status = "applied" if verification["ok"] else "applied-unverified"
        audited = self.audit.append("dns.apply", **entry, result=status, verification=verification)
        return {
            "plan_id": plan_id,
            "status": status,
            "verified": verification["ok"],
            "verification": verification,
            "memory": self._remember(audited, plan, verified=verification["ok"]),
        }

    def _remember(
        self, audited: dict[str, Any], plan: dict[str, Any], *, verified: bool
    ) -> MemoryNote | None:
        """Record a verified change in the shared memory (after verification, never before)."""
        if self.recorder is None:
            return None
        if not verified:
            return MemoryNote(
                remembered=False,
                detail="not every server shows the change yet, so it is not remembered",
            )
        return self.recorder.record(audited["seq"], change_facts(plan["after"]))

    # ---------------------------------------------------------------- verifying
    def verify_record(
        self, zone: str, name: str, rtype: str, expected: list[str] | None, ttl: int | None = None
    ) -> dict[str, Any]:
        canon = self.policy.check_zone(zone)
        fq = absolute_name(name, canon)
        rtype = rtype.upper()
        want = None
        if expected:
            values = tuple(sorted({canonical_rdata(rtype, v, canon) for v in expected}))
            want = RRset(fq, rtype, ttl or 0, values)
        return self.verify_many(canon, {(fq, rtype): want}, check_ttl=ttl is not None)

    def verify_many(
        self, zone: str, wanted: dict[tuple[str, str], RRset | None], *, check_ttl: bool = True
    ) -> dict[str, Any]:
        """Poll every authoritative server until all agree with ``wanted`` or time runs out."""
        servers = self.backend.authoritative(zone)
        deadline = time.monotonic() + self.verify_timeout_s
        delay = 0.05
        while True:
            report = [self._check_server(ep, zone, wanted, check_ttl) for ep in servers]
            ok = all(r["ok"] for r in report)
            serials = {r["serial"] for r in report}
            if ok or time.monotonic() >= deadline:
                break
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 1.0)
        return {
            "ok": ok,
            "servers": report,
            "serials_agree": len(serials) == 1,
            "disagreeing": [r["server"] for r in report if not r["ok"]],
        }

    def _check_server(
        self, ep: Any, zone: str, wanted: dict[tuple[str, str], RRset | None], check_ttl: bool
    ) -> dict[str, Any]:
        problems: list[str] = []
        serial = None
        for (name, rtype), want in sorted(wanted.items()):
            answer: QueryAnswer = self.backend.query(ep, zone, name, rtype)
            serial = answer.serial if answer.serial is not None else serial
            if answer.error:
                problems.append(f"{name} {rtype}: {answer.error}")
                continue
            got = answer.rrset
            if want is None and got is not None:
                problems.append(f"{name} {rtype}: still present {list(got.values)}")
            elif want is not None and got is None:
                problems.append(f"{name} {rtype}: missing")
            elif want is not None and got is not None:
                if got.values != want.values:
                    problems.append(
                        f"{name} {rtype}: has {list(got.values)}, want {list(want.values)}"
                    )
                elif check_ttl and want.ttl and got.ttl != want.ttl:
                    problems.append(f"{name} {rtype}: TTL {got.ttl}, want {want.ttl}")
        return {"server": str(ep), "ok": not problems, "serial": serial, "problems": problems[:20]}


def _dump(key: tuple[str, str], rr: RRset | None) -> dict[str, Any]:
    return {"name": key[0], "type": key[1], "rrset": rr.as_dict() if rr else None}
