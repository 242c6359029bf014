"""Inputs and structured results of the Firewall tools (their input and output schemas)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pai_core.memory.record import MemoryNote
from pai_firewall.rules import Rule, RuleIn

__all__ = [
    "ApplyResult",
    "ChangeIn",
    "Check",
    "ConfirmResult",
    "DiffLine",
    "ExplainResult",
    "HistoryEntry",
    "HistoryPage",
    "Outcome",
    "PendingInfo",
    "PlanResult",
    "RollbackResult",
    "RuleView",
    "RulesPage",
    "VerdictOut",
]


class ChangeIn(BaseModel):
    """One change to the owned table."""

    model_config = ConfigDict(extra="forbid")
    op: Literal["add", "remove", "modify", "set_policy"] = Field(
        description="add: a new rule; remove: rule_id; modify: rule_id becomes `rule` "
        "(same place); set_policy: the default verdict of `chain`."
    )
    rule: RuleIn | None = Field(None, description="The rule (add, modify).")
    rule_id: str | None = Field(None, description="The rule to remove or modify (list_rules).")
    position: int | None = Field(
        None, ge=0, description="add: index in its chain, 0 = first (default: last)."
    )
    chain: str | None = Field(None, description="set_policy: input, forward or output.")
    policy: Literal["accept", "drop"] | None = Field(None, description="set_policy: the policy.")

    @model_validator(mode="after")
    def _complete(self) -> ChangeIn:
        need = {
            "add": ("rule",),
            "remove": ("rule_id",),
            "modify": ("rule_id", "rule"),
            "set_policy": ("chain", "policy"),
        }[self.op]
        missing = [f for f in need if getattr(self, f) is None]
        if missing:
            raise ValueError(f"op {self.op} needs {' and '.join(missing)}")
        return self


class RuleView(Rule):
    position: int = Field(description="Index in its chain (0 is evaluated first).")
    text: str = Field(description="The rule in one line.")
    has_expired: bool = Field(description="True when expires_at has passed.")


class PendingInfo(BaseModel):
    change_id: str
    plan_id: str | None
    confirm_by: str = Field(description="UTC time; unless confirmed by then it is rolled back.")
    seconds_left: float


class RulesPage(BaseModel):
    table: str
    netns: str | None
    exists: bool = Field(description="False when the table is not there yet (nothing applied).")
    policies: dict[str, str] = Field(description="Default verdict per chain.")
    total: int
    offset: int
    rules: list[RuleView]
    foreign: list[str] = Field(description="Things in the table this server did not write.")
    pending: PendingInfo | None = Field(description="A change waiting for confirm_change.")


class VerdictOut(BaseModel):
    invariant: str
    kind: str
    ok: bool
    detail: str = Field(description="Why, with the deciding rule where there is one.")
    witness: dict[str, Any] | None = Field(None, description="A packet that breaks it.")
    rule_id: str | None = None


class DiffLine(BaseModel):
    op: str
    chain: str
    position: int | None
    before: str | None = Field(description="The rule or policy before (None: new).")
    after: str | None = Field(description="The rule or policy after (None: removed).")
    rule_id: str | None


class PlanResult(BaseModel):
    plan_id: str = Field(description="Pass to apply_change (only when allowed).")
    table: str
    allowed: bool = Field(description="Every invariant holds on the resulting ruleset.")
    expires_in_s: int
    noop: bool = Field(description="The table would not change.")
    diff: list[DiffLine]
    verdicts: list[VerdictOut] = Field(description="One per invariant of the constitution.")
    rules_after: int
    notes: list[str] = Field(description="Expired rules and other things to know.")


class Check(BaseModel):
    name: str
    ok: bool
    detail: str


class ApplyResult(BaseModel):
    change_id: str = Field(description="Pass to confirm_change before confirm_by.")
    plan_id: str
    status: Literal["pending-confirmation"]
    confirm_by: str = Field(description="UTC; unless confirmed, the old table comes back.")
    confirm_within_s: int
    checks: list[Check] = Field(description="Self-check: live table as planned, probes.")


class ConfirmResult(BaseModel):
    change_id: str
    status: Literal["confirmed"]
    memory: MemoryNote


class RollbackResult(BaseModel):
    change_id: str = Field(description="The change this rollback undid or restored before.")
    status: Literal["rolled_back"]
    verified: bool = Field(description="The live table equals the restored one.")
    diff: list[DiffLine]
    memory: MemoryNote


class Outcome(BaseModel):
    verdict: str
    decided_by: Literal["rule", "policy"]
    rule: RuleView | None
    why: str
    example: dict[str, Any] = Field(description="The lowest packet of the class decided here.")


class ExplainResult(BaseModel):
    verdict: str = Field(description="accept, drop, reject, or 'depends' (see outcomes).")
    chain: str
    outcomes: list[Outcome] = Field(description="One per deciding rule (or the policy).")
    note: str


class HistoryEntry(BaseModel):
    seq: int
    ts: str
    action: str
    result: str | None
    change_id: str | None
    plan_id: str | None
    detail: str


class HistoryPage(BaseModel):
    table: str
    total: int
    entries: list[HistoryEntry] = Field(description="Newest first.")
