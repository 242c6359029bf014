"""The graph's values as MCP tools see them: :class:`FactIn` going in, and what comes back
(structured output schemas), compact and name-resolved. The service takes and returns these
models directly; tools pass them through."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

__all__ = [
    "BatchResult",
    "ConflictReport",
    "ConflictView",
    "EdgeView",
    "EntityView",
    "FactIn",
    "FactPage",
    "FactView",
    "MergeResult",
    "PredicateView",
    "TimelineGroup",
    "TimelineView",
    "TraverseView",
    "WriteResult",
]


class FactIn(BaseModel):
    """One fact: subject PREDICATE object (an entity) or value (a literal)."""

    subject: str = Field(description="Entity name, e.g. 'MemBrane'.")
    predicate: str = Field(description="e.g. RUNS_ON, USES, HAS_VERSION ('runs on' works too).")
    object: str | None = Field(None, description="Object entity name.")
    value: str | None = Field(None, description="Or a literal value (version, URL, number).")
    subject_type: str | None = Field(None, description="e.g. service, host, project, person.")
    object_type: str | None = Field(None, description="Type of the object entity.")
    valid_from: str | None = Field(None, description="When it became true (default now).")
    valid_to: str | None = Field(None, description="When it stopped being true (default open).")
    source: str | None = Field(None, description="Where this comes from (session, note, tool).")
    confidence: float = Field(1.0, ge=0, le=1)
    note: str | None = Field(None, description="Free text.")


class FactView(BaseModel):
    id: str
    subject: str
    predicate: str
    object: str | None = Field(None, description="Object entity name, if the object is an entity.")
    value: str | None = Field(None, description="Literal object value, if not an entity.")
    valid_from: str
    valid_to: str | None
    recorded_at: str
    retracted_at: str | None = None
    current: bool = Field(description="True now: valid now and not retracted.")
    source: str = ""
    confidence: float = 1.0
    note: str = ""
    superseded_by: str | None = None


class ConflictReport(BaseModel):
    rule: Literal["cardinality-one", "mutual-exclusion"]
    existing: FactView
    new: FactView
    action: Literal["superseded-existing", "bounded-new", "rejected", "flagged"]
    conflict_id: str | None = Field(None, description="Open conflict id (policy flag).")


class WriteResult(BaseModel):
    status: Literal["written", "unchanged", "rejected"]
    fact: FactView | None = Field(None, description="The fact written, or the identical one found.")
    conflicts: list[ConflictReport] = Field(default_factory=list)


class BatchResult(BaseModel):
    status: Literal["written", "rejected"]
    written: int
    unchanged: int
    results: list[WriteResult]


class EntityView(BaseModel):
    id: str
    name: str
    type: str
    aliases: list[str]
    outgoing: list[FactView]
    incoming: list[FactView]
    truncated: bool = False


class FactPage(BaseModel):
    facts: list[FactView]
    next_offset: int | None = Field(None, description="Pass as offset for the next page.")


class EdgeView(BaseModel):
    """A compact fact for graph walks: use get_entity or query_facts for full detail."""

    id: str
    subject: str
    predicate: str
    object: str | None = None
    value: str | None = None


class TraverseView(BaseModel):
    start: str
    nodes: list[dict[str, str | int]] = Field(description="name, type, depth")
    edges: list[EdgeView]
    truncated: bool = False


class TimelineGroup(BaseModel):
    group: str = Field(description="Project (via PART_OF / WORKS_ON) or entity name.")
    events: list[dict[str, str | None]]


class TimelineView(BaseModel):
    since: str
    until: str
    groups: list[TimelineGroup]
    total_events: int
    truncated: bool = False


class ConflictView(BaseModel):
    id: str
    rule: str
    status: str
    created_at: str
    resolved_at: str | None
    resolution: str
    new: FactView | None
    existing: FactView | None


class PredicateView(BaseModel):
    name: str
    cardinality: Literal["one", "many"]
    inverse: str | None
    aliases: list[str]
    exclusive_with: list[str]
    description: str
    builtin: bool


class MergeResult(BaseModel):
    target: EntityView
    facts_moved: int
    duplicates_retracted: int
