"""Plan → constitution → ``nft -c`` → one atomic ``nft -f`` → self-check → confirm or roll back.

Plans are JSON files under ``<data_dir>/plans`` (any server process can apply them); each holds
the table it was made against (by checksum), the resulting table, its diff and the verdict per
invariant. Applying arms the dead-man guard first (:mod:`pai_firewall.deadman`), then changes
the table, then checks the live table; unless :meth:`FirewallService.confirm` comes in time,
the guard restores the table as it was. Every change keeps a record under
``<data_dir>/changes`` (before and after), so :meth:`FirewallService.rollback` can restore the
table as it was before any earlier change. Every plan, apply, confirm and rollback is audited;
a confirmed change (and a requested rollback) is then remembered in the shared memory.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from pai_core.audit import AuditLog
from pai_core.errors import (
    BackendUnavailable,
    Conflict,
    InvalidInput,
    NotFound,
    PolicyDenied,
    VerificationFailed,
)
from pai_core.memory.record import ChangeFact, MemoryNote, PredicateSpec
from pai_firewall.backend import NftError, NftRunner
from pai_firewall.constitution import Constitution, describe
from pai_firewall.deadman import (
    PENDING,
    read_pending,
    roll_back_pending,
    spawn_guard,
    state_lock,
    write_json,
)
from pai_firewall.evaluate import PacketSpec, decide
from pai_firewall.models import (
    ApplyResult,
    ChangeIn,
    Check,
    ConfirmResult,
    DiffLine,
    ExplainResult,
    HistoryEntry,
    HistoryPage,
    Outcome,
    PendingInfo,
    PlanResult,
    RollbackResult,
    RulesPage,
    RuleView,
    VerdictOut,
)
from pai_firewall.parse import parse_table
from pai_firewall.render import render_table
from pai_firewall.rules import CHAINS, Rule, Ruleset, TableRef

__all__ = ["PREDICATES", "FirewallService", "Recorder"]

log = logging.getLogger(__name__)
MAX_CHANGES = 500
ARM_MARGIN_S = 30.0  # extra time the guard allows while apply and self-check are under way

PREDICATES = [
    PredicateSpec("IN_FIREWALL_TABLE", "one", "A firewall rule is in this nftables table."),
    PredicateSpec("FIREWALL_RULE", "one", "What a firewall rule matches and does."),
    PredicateSpec("FIREWALL_POLICY", "one", "The default verdict of a firewall chain."),
]


class Recorder(Protocol):
    def record(
        self, audit_id: str | int, facts: Sequence[ChangeFact], *, at: float | None = None
    ) -> MemoryNote: ...


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def _view(rule: Rule, position: int, now: float) -> RuleView:
    return RuleView(
        **rule.model_dump(), position=position, text=rule.summary(), has_expired=rule.expired(now)
    )


def _hex_id(value: str, field_name: str) -> str:
    if not (len(value) in (8, 16) and all(c in "0123456789abcdef" for c in value)):
        raise InvalidInput(f"{field_name} {value!r} is not an id of this server", field=field_name)
    return value


def _diff(before: Ruleset, after: Ruleset) -> list[DiffLine]:
    lines: list[DiffLine] = []
    for name in CHAINS:
        b, a = before.chains[name], after.chains[name]
        if b.policy != a.policy or (not before.exists and after.exists):
            lines.append(
                DiffLine(
                    op="set_policy",
                    chain=name,
                    position=None,
                    before=f"policy {b.policy}" if before.exists else None,
                    after=f"policy {a.policy}",
                    rule_id=None,
                )
            )
    old = {r.id: (c, i, r) for c in CHAINS for i, r in enumerate(before.chains[c].rules)}
    new = {r.id: (c, i, r) for c in CHAINS for i, r in enumerate(after.chains[c].rules)}
    for rid, (c, i, r) in new.items():
        if rid not in old:
            lines.append(
                DiffLine(op="add", chain=c, position=i, before=None, after=r.summary(), rule_id=rid)
            )
        elif old[rid][2] != r or old[rid][0] != c:
            lines.append(
                DiffLine(
                    op="modify",
                    chain=c,
                    position=i,
                    before=old[rid][2].summary(),
                    after=r.summary(),
                    rule_id=rid,
                )
            )
    for rid, (c, i, r) in old.items():
        if rid not in new:
            lines.append(
                DiffLine(
                    op="remove", chain=c, position=i, before=r.summary(), after=None, rule_id=rid
                )
            )
    return lines


@dataclass
class FirewallService:
    table: TableRef
    runner: NftRunner
    constitution: Constitution | None
    constitution_error: str
    data_dir: Path
    audit: AuditLog
    recorder: Recorder
    plan_ttl_s: int = 900
    default_confirm_s: int = 120
    max_confirm_s: int = 3600

    # ------------------------------------------------------------------ reading
    def read(self) -> Ruleset:
        """The live owned table (an empty, absent table when nothing was applied yet)."""
        try:
            return parse_table(self.runner.list_table())
        except NftError as exc:
            hint = "Install nftables (apt-get install nftables)." if exc.missing else None
            raise BackendUnavailable(f"cannot read table {self.table}: {exc}", hint=hint) from exc

    @property
    def _where(self) -> dict[str, Any]:
        return {"table": str(self.table), "netns": self.runner.netns}

    def pending_info(self) -> PendingInfo | None:
        p = read_pending(self.data_dir)
        if p is None:
            return None
        left = float(p["deadline"]) - time.time()
        return PendingInfo(
            change_id=p["change_id"],
            plan_id=p.get("plan_id"),
            confirm_by=_iso(float(p["deadline"])),
            seconds_left=round(max(0.0, left), 1),
        )

    def list_rules(self, chain: str | None = None, offset: int = 0, limit: int = 200) -> RulesPage:
        if chain is not None and chain not in CHAINS:
            raise InvalidInput(f"unknown chain {chain!r}: use {', '.join(CHAINS)}", field="chain")
        current, now = self.read(), time.time()
        views = [
            _view(r, i, now)
            for c in CHAINS
            if chain in (None, c)
            for i, r in enumerate(current.chains[c].rules)
        ]
        return RulesPage(
            **self._where,
            exists=current.exists,
            policies={c: current.chains[c].policy for c in CHAINS},
            total=len(views),
            offset=offset,
            rules=views[offset : offset + limit],
            foreign=current.foreign,
            pending=self.pending_info(),
        )

    def explain(self, spec: PacketSpec) -> ExplainResult:
        current, now = self.read(), time.time()
        decision = decide(current, spec)
        outcomes = []
        for piece in decision.outcomes:
            why = (
                f"no rule of {spec.chain} matches, so {describe(piece, spec.chain)} decides"
                if piece.rule is None
                else f"{describe(piece, spec.chain)} is the first rule of {spec.chain} that matches"
            )
            outcomes.append(
                Outcome(
                    verdict=piece.verdict,
                    decided_by="policy" if piece.rule is None else "rule",
                    rule=_view(piece.rule, piece.position or 0, now) if piece.rule else None,
                    why=why,
                    example=piece.example(decision.interfaces),
                )
            )
        verdicts = decision.verdicts
        return ExplainResult(
            verdict=verdicts.pop() if len(verdicts) == 1 else "depends",
            chain=spec.chain,
            outcomes=outcomes,
            note=f"Evaluated on the live table {self.table} only; other tables on the same "
            "hook can still drop what it accepts.",
        )

    # ------------------------------------------------------------------ planning
    def _constitution(self) -> Constitution:
        if self.constitution is None:
            raise PolicyDenied(
                f"every change is refused: {self.constitution_error}",
                rule="constitution",
                hint="Fix the constitution file and restart the server; nothing was changed.",
            )
        return self.constitution

    def plan(self, changes: list[ChangeIn]) -> PlanResult:
        constitution = self._constitution()
        if not changes:
            raise InvalidInput("changes is empty", field="changes")
        if len(changes) > MAX_CHANGES:
            raise InvalidInput(f"at most {MAX_CHANGES} changes in one plan", field="changes")
        current, now = self.read(), time.time()
        if current.foreign:
            raise Conflict(
                f"table {self.table} holds things this server did not write: "
                + "; ".join(current.foreign[:5]),
                hint="Remove them with nft, or point PAI_FIREWALL_TABLE at a table of its "
                "own; nothing was changed.",
            )
        after = current.editable_copy()
        for i, ch in enumerate(changes):
            self._change(after, ch, i, now)
        verdicts = constitution.check(after, now)
        allowed = all(v.ok for v in verdicts)
        diff = _diff(current, after)
        notes = [
            f"rule {r.id} ({r.summary()}) expired at {_iso(r.expires_at or 0)}"
            for r in after.rules()
            if r.expired(now)
        ]
        if (pending := self.pending_info()) is not None:
            notes.append(
                f"change {pending.change_id} awaits confirmation: confirm or roll it back "
                "before applying this plan"
            )
        plan: dict[str, Any] = {
            "plan_id": secrets.token_hex(8),
            **self._where,
            "created_at": now,
            "expires_at": now + self.plan_ttl_s,
            "base_checksum": current.checksum(),
            "before": current.model_dump(mode="json"),
            "after": after.model_dump(mode="json"),
            "allowed": allowed,
            "noop": not diff,
            "failing": [v.name for v in verdicts if not v.ok],
        }
        write_json(self.data_dir / "plans" / f"{plan['plan_id']}.json", plan)
        self.audit.append(
            "firewall.plan",
            **self._where,
            plan_id=plan["plan_id"],
            result="allowed" if allowed else "refused",
            changes=[c.model_dump(exclude_none=True) for c in changes],
            failing=plan["failing"],
        )
        return PlanResult(
            plan_id=plan["plan_id"],
            table=str(self.table),
            allowed=allowed,
            expires_in_s=self.plan_ttl_s,
            noop=not diff,
            diff=diff,
            verdicts=[
                VerdictOut(
                    invariant=v.name,
                    kind=v.kind,
                    ok=v.ok,
                    detail=v.detail,
                    witness=v.witness,
                    rule_id=v.rule_id,
                )
                for v in verdicts
            ],
            rules_after=len(after.rules()),
            notes=notes,
        )

    def _change(self, rs: Ruleset, ch: ChangeIn, i: int, now: float) -> None:
        where = f"changes[{i}]"
        if ch.op == "set_policy":
            if ch.chain not in CHAINS:
                raise InvalidInput(
                    f"{where}: unknown chain {ch.chain!r}: use {', '.join(CHAINS)}",
                    field=f"{where}.chain",
                )
            assert ch.policy is not None
            rs.chains[ch.chain].policy = ch.policy
            return
        found = None
        if ch.rule_id is not None:
            found = rs.find(_hex_id(ch.rule_id, f"{where}.rule_id"))
            if found is None:
                raise NotFound(
                    f"{where}: no rule {ch.rule_id} in table {self.table}",
                    hint="See list_rules; nothing was changed.",
                )
        new: Rule | None = None
        if ch.rule is not None:
            days = ch.rule.expires_in_days
            new = Rule(
                **ch.rule.model_dump(exclude={"expires_in_days"}),
                id=found[2].id if found else secrets.token_hex(4),
                expires_at=int(now + days * 86400) if days else None,
            )
        if ch.op == "add":
            assert new is not None
            rules = rs.chains[new.chain].rules
            pos = len(rules) if ch.position is None else ch.position
            if pos > len(rules):
                raise InvalidInput(
                    f"{where}: position {pos} is past the end of {new.chain} ({len(rules)} rules)",
                    field=f"{where}.position",
                )
            rules.insert(pos, new)
            return
        assert found is not None
        chain, pos, _old = found
        del rs.chains[chain].rules[pos]
        if ch.op == "modify":
            assert new is not None
            target = rs.chains[new.chain].rules
            target.insert(pos if new.chain == chain else len(target), new)

    # ------------------------------------------------------------------ applying
    def _load_plan(self, plan_id: str) -> dict[str, Any]:
        path = self.data_dir / "plans" / f"{_hex_id(plan_id, 'plan_id')}.json"
        try:
            plan: dict[str, Any] = json.loads(path.read_text())
        except FileNotFoundError:
            raise NotFound(
                f"no plan {plan_id}", hint="Plans expire; make a new one with plan_change."
            ) from None
        if time.time() > plan["expires_at"]:
            path.unlink(missing_ok=True)
            raise Conflict(f"plan {plan_id} expired", hint="Make a new plan with plan_change.")
        if plan["table"] != str(self.table) or plan["netns"] != self.runner.netns:
            raise Conflict(
                f"plan {plan_id} was made for table {plan['table']} (netns {plan['netns']})",
                hint="Plan again here.",
            )
        return plan

    def apply(self, plan_id: str, confirm_within_s: int | None = None) -> ApplyResult:
        constitution = self._constitution()
        window = self.default_confirm_s if confirm_within_s is None else confirm_within_s
        if not 1 <= window <= self.max_confirm_s:
            raise InvalidInput(
                f"confirm_within_s must be 1..{self.max_confirm_s}", field="confirm_within_s"
            )
        plan = self._load_plan(plan_id)
        if not plan["allowed"]:
            raise PolicyDenied(
                f"plan {plan_id} breaks the constitution: {', '.join(plan['failing'])}",
                rule=",".join(plan["failing"]),
            )
        after = Ruleset.model_validate(plan["after"])
        failing = [v.name for v in constitution.check(after) if not v.ok]
        if failing:  # time-dependent invariants (expiry) may have changed since the plan
            raise PolicyDenied(
                f"plan {plan_id} now breaks {', '.join(failing)}",
                rule=",".join(failing),
                hint="Plan again.",
            )
        entry_fields = {**self._where, "plan_id": plan_id}
        with state_lock(self.data_dir):
            pending = read_pending(self.data_dir)
            if pending is not None:
                raise Conflict(
                    f"change {pending['change_id']} awaits confirmation until "
                    f"{_iso(float(pending['deadline']))}",
                    hint="confirm_change or rollback it first; nothing was changed.",
                )
            current = self.read()
            if current.checksum() != plan["base_checksum"]:
                raise Conflict(
                    f"table {self.table} changed since plan {plan_id} was made",
                    hint="Plan again; nothing was changed.",
                )
            if plan["noop"]:
                raise Conflict(
                    f"plan {plan_id} changes nothing",
                    hint="The table already matches; nothing was changed.",
                )
            batch = render_table(self.table, after)
            try:
                self.runner.check(batch)
            except NftError as exc:
                self.audit.append(
                    "firewall.apply", **entry_fields, result="refused", error=str(exc)
                )
                raise BackendUnavailable(
                    f"nft -c refused the batch: {exc}", hint="Nothing was changed."
                ) from exc
            return self._apply_armed(plan, current, after, batch, window, constitution)

    def _apply_armed(
        self,
        plan: dict[str, Any],
        current: Ruleset,
        after: Ruleset,
        batch: str,
        window: int,
        constitution: Constitution,
    ) -> ApplyResult:
        """Arm the guard, apply, self-check; the caller holds the state lock."""
        change_id = secrets.token_hex(8)
        fields = {**self._where, "plan_id": plan["plan_id"], "change_id": change_id}
        probes_budget = sum(p.timeout_s for p in constitution.probes)
        pending: dict[str, Any] = {
            **fields,
            "nft": self.runner.nft,
            "ip": self.runner.ip,
            "audit_log": str(self.audit.path),
            "deadline": time.time() + window + probes_budget + ARM_MARGIN_S,
            "rollback_batch": render_table(self.table, current),
            "rollback_checksum": current.checksum(),
            "applied_checksum": after.checksum(),
        }
        write_json(self.data_dir / PENDING, pending, durable=True)
        pending["guard_pid"] = spawn_guard(self.data_dir, change_id)
        write_json(self.data_dir / PENDING, pending)  # the pid only spares a second guard
        record = {
            "change_id": change_id,
            **fields,
            "before": plan["before"],
            "after": plan["after"],
            "state": "applying",
        }
        write_json(self.data_dir / "changes" / f"{change_id}.json", record)
        try:
            self.runner.apply(batch)
        except NftError as exc:
            (self.data_dir / PENDING).unlink(missing_ok=True)
            write_json(
                self.data_dir / "changes" / f"{change_id}.json", {**record, "state": "failed"}
            )
            unchanged = self.read().checksum() == current.checksum()
            self.audit.append(
                "firewall.apply",
                **fields,
                result="refused",
                error=str(exc),
                table_unchanged=unchanged,
            )
            raise BackendUnavailable(
                f"the kernel rejected the batch: {exc}",
                hint="The table is unchanged (verified)."
                if unchanged
                else "The table may be different: check list_rules.",
            ) from exc
        applied_at = time.time()
        live = self.read()
        checks = [
            Check(
                name="live table as planned",
                ok=live.checksum() == after.checksum(),
                detail="nft -j list table matches the plan"
                if live.checksum() == after.checksum()
                else "the live table differs from the plan",
            )
        ]
        checks += [
            Check(name=f"probe {r.name}", ok=r.ok, detail=r.detail)
            for r in constitution.self_check(live)
        ]
        if not all(c.ok for c in checks):
            failed = "; ".join(f"{c.name}: {c.detail}" for c in checks if not c.ok)
            self.audit.append(
                "firewall.apply",
                **fields,
                result="self-check failed",
                checks=[c.model_dump() for c in checks],
            )
            entry = roll_back_pending(self.data_dir, pending, "self-check failed")
            raise VerificationFailed(
                f"self-check failed after apply: {failed}",
                hint=f"The previous table was restored ({entry['result']}); nothing stays "
                "changed. Fix the plan or the probe, then plan again.",
            )
        pending["deadline"] = time.time() + window
        pending["state"] = "pending"
        write_json(self.data_dir / PENDING, pending, durable=True)
        entry = self.audit.append(
            "firewall.apply",
            **fields,
            result="pending-confirmation",
            confirm_by=_iso(pending["deadline"]),
            checks=[c.model_dump() for c in checks],
        )
        write_json(
            self.data_dir / "changes" / f"{change_id}.json",
            {**record, "state": "pending", "applied_at": applied_at, "apply_seq": entry["seq"]},
        )
        return ApplyResult(
            change_id=change_id,
            plan_id=plan["plan_id"],
            status="pending-confirmation",
            confirm_by=_iso(pending["deadline"]),
            confirm_within_s=window,
            checks=checks,
        )

    # ------------------------------------------------------------------ confirming
    def _record_of(self, change_id: str) -> dict[str, Any]:
        path = self.data_dir / "changes" / f"{_hex_id(change_id, 'change_id')}.json"
        try:
            data: dict[str, Any] = json.loads(path.read_text())
        except FileNotFoundError:
            raise NotFound(f"no change {change_id}", hint="See history.") from None
        return data

    def confirm(self, change_id: str) -> ConfirmResult:
        with state_lock(self.data_dir):
            record = self._record_of(change_id)
            pending = read_pending(self.data_dir)
            if pending is None or pending["change_id"] != change_id:
                if record["state"] == "confirmed":
                    note = MemoryNote(remembered=True, detail="confirmed before")
                    return ConfirmResult(change_id=change_id, status="confirmed", memory=note)
                raise Conflict(
                    f"change {change_id} is {record['state'].replace('_', ' ')}"
                    + (
                        f" ({record.get('rollback_reason')})"
                        if record.get("rollback_reason")
                        else ""
                    ),
                    hint="Nothing to confirm: plan and apply it again.",
                )
            if time.time() >= float(pending["deadline"]):
                entry = roll_back_pending(self.data_dir, pending, "confirmation came too late")
                raise Conflict(
                    f"change {change_id} was not confirmed in time and was rolled "
                    f"back ({entry['result']})",
                    hint="Plan and apply it again, then confirm sooner.",
                )
            (self.data_dir / PENDING).unlink()
            write_json(
                self.data_dir / "changes" / f"{change_id}.json",
                {**record, "state": "confirmed", "confirmed_at": time.time()},
            )
            entry = self.audit.append(
                "firewall.confirm",
                **self._where,
                change_id=change_id,
                plan_id=record["plan_id"],
                result="confirmed",
            )
        facts = self._facts(
            Ruleset.model_validate(record["before"]), Ruleset.model_validate(record["after"])
        )
        memory = self.recorder.record(entry["seq"], facts, at=record.get("applied_at"))
        return ConfirmResult(change_id=change_id, status="confirmed", memory=memory)

    def _facts(self, before: Ruleset, after: Ruleset) -> list[ChangeFact]:
        table = f"nftables table {self.table}" + (
            f" in netns {self.runner.netns}" if self.runner.netns else ""
        )
        facts: list[ChangeFact] = []
        old = {r.id: r for r in before.rules()}
        new = {r.id: r for r in after.rules()}
        for rid, r in new.items():
            if old.get(rid) != r:
                subject = f"firewall rule {rid}"
                facts.append(
                    ChangeFact(
                        subject,
                        "IN_FIREWALL_TABLE",
                        object=table,
                        subject_type="firewall_rule",
                        object_type="firewall_table",
                    )
                )
                text = f"{r.chain}: {r.summary()} (owner {r.owner}) {r.comment}".strip()
                facts.append(
                    ChangeFact(subject, "FIREWALL_RULE", value=text, subject_type="firewall_rule")
                )
        for rid in old.keys() - new.keys():
            facts.append(ChangeFact(f"firewall rule {rid}", "IN_FIREWALL_TABLE", ended=True))
            facts.append(ChangeFact(f"firewall rule {rid}", "FIREWALL_RULE", ended=True))
        for c in CHAINS:
            if before.chains[c].policy != after.chains[c].policy or not before.exists:
                facts.append(
                    ChangeFact(
                        f"{table} chain {c}",
                        "FIREWALL_POLICY",
                        value=after.chains[c].policy,
                        subject_type="firewall_chain",
                    )
                )
        return facts

    # ------------------------------------------------------------------ rolling back
    def rollback(self, to: str | None = None) -> RollbackResult:
        with state_lock(self.data_dir):
            pending = read_pending(self.data_dir)
            if pending is not None and to in (None, pending["change_id"]):
                record = self._record_of(pending["change_id"])
                entry = roll_back_pending(self.data_dir, pending, "rollback requested")
                if entry["result"] == "failed":
                    raise BackendUnavailable(
                        f"rollback failed: {entry.get('error')}",
                        hint="The change is still pending; retry.",
                    )
                diff = _diff(
                    Ruleset.model_validate(record["after"]),
                    Ruleset.model_validate(record["before"]),
                )
                memory = self.recorder.record(entry["seq"], [])
                return RollbackResult(
                    change_id=pending["change_id"],
                    status="rolled_back",
                    verified=bool(entry.get("verified")),
                    diff=diff,
                    memory=memory,
                )
            if pending is not None:
                raise Conflict(
                    f"change {pending['change_id']} awaits confirmation",
                    hint="Confirm or roll back that change first; nothing was changed.",
                )
            record = self._record_of(to) if to else self._last_confirmed()
            target = Ruleset.model_validate(record["before"])
            failing = [v.name for v in self._constitution().check(target) if not v.ok]
            if failing:
                raise PolicyDenied(
                    f"the table before change {record['change_id']} breaks {', '.join(failing)}",
                    rule=",".join(failing),
                )
            current = self.read()
            batch = render_table(self.table, target)
            try:
                self.runner.check(batch)
                self.runner.apply(batch)
            except NftError as exc:
                raise BackendUnavailable(
                    f"nft refused the rollback: {exc}", hint="Nothing was changed."
                ) from exc
            verified = self.read().checksum() == target.checksum()
            entry = self.audit.append(
                "firewall.rollback",
                **self._where,
                change_id=record["change_id"],
                reason="rollback requested",
                result="rolled_back",
                verified=verified,
            )
        if not verified:
            raise VerificationFailed(
                "the live table differs from the restored one after the rollback",
                hint="Check list_rules.",
            )
        memory = self.recorder.record(entry["seq"], self._facts(current, target))
        return RollbackResult(
            change_id=record["change_id"],
            status="rolled_back",
            verified=verified,
            diff=_diff(current, target),
            memory=memory,
        )

    def _last_confirmed(self) -> dict[str, Any]:
        records = []
        for path in (self.data_dir / "changes").glob("*.json"):
            data = json.loads(path.read_text())
            if data.get("state") == "confirmed":
                records.append(data)
        if not records:
            raise NotFound("no confirmed change to roll back", hint="See history.")
        return max(records, key=lambda d: float(d.get("confirmed_at", 0)))

    # ------------------------------------------------------------------ history
    def history(self, limit: int = 50, offset: int = 0) -> HistoryPage:
        where = self._where
        rows = [
            e
            for e in self.audit.entries()
            if str(e.get("action", "")).startswith("firewall.")
            and e.get("table") == where["table"]
            and e.get("netns") == where["netns"]
        ]
        rows.reverse()
        entries = [
            HistoryEntry(
                seq=e["seq"],
                ts=e["ts"],
                action=e["action"].removeprefix("firewall."),
                result=e.get("result"),
                change_id=e.get("change_id"),
                plan_id=e.get("plan_id"),
                detail=str(e.get("reason") or e.get("error") or e.get("failing") or ""),
            )
            for e in rows[offset : offset + limit]
        ]
        return HistoryPage(table=where["table"], total=len(rows), entries=entries)
