"""How an infrastructure server remembers what it changed.

After a change is applied *and verified*, the server records it as facts in the shared memory
with source ``<server>:<audit id>`` and the change's time as ``valid_from``, through the same
conflict detection as every other write (policy ``supersede``), so the graph stays true now by
itself: a new ``www.example.com HAS_A 192.0.2.11`` supersedes the old address, and the old one
stays in history. A fact marked ``ended`` closes what stopped being true (a deleted record).

Recording never turns a successful change into a failed call: :meth:`ChangeRecorder.record`
does not raise. It returns a :class:`MemoryNote` that the tool puts in its result — remembered,
or not and why (recording is off, the memory cannot be written, a fact was refused) — and logs
a warning when it fails.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from pai_core.memory.graph.service import GraphService
    from pai_core.settings import MemorySettings, ServerSettings

__all__ = ["ChangeFact", "ChangeRecorder", "MemoryNote", "PredicateSpec"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ChangeFact:
    """``subject PREDICATE object`` (an entity) or ``value`` (a literal); or, with ``ended``,
    the end of every current ``subject PREDICATE …`` fact."""

    subject: str
    predicate: str
    object: str | None = None
    value: str | None = None
    subject_type: str | None = None
    object_type: str | None = None
    note: str = ""
    ended: bool = False


@dataclass(frozen=True, slots=True)
class PredicateSpec:
    """A predicate a server records (declared once, the first time it records)."""

    name: str
    cardinality: Literal["one", "many"] = "many"
    description: str = ""


class MemoryNote(BaseModel):
    """Whether a change was recorded in the shared memory."""

    remembered: bool = Field(description="True when the change is now in the shared memory.")
    facts: int = Field(0, description="Facts written or ended.")
    source: str | None = Field(None, description="Source of the facts: <server>:<audit id>.")
    detail: str = Field("", description="What was superseded, or why nothing was remembered.")


class ChangeRecorder:
    """Records one server's verified changes in the shared memory."""

    def __init__(
        self,
        memory: MemorySettings,
        server: str,
        *,
        enabled: bool = True,
        predicates: Sequence[PredicateSpec] = (),
        setting: str = "",
    ) -> None:
        self.memory = memory
        self.server = server
        self.enabled = enabled
        self.predicates = tuple(predicates)
        self.setting = setting or f"PAI_{server.upper()}_REMEMBER"
        self._graph: GraphService | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(
        cls, settings: ServerSettings, *, predicates: Sequence[PredicateSpec] = ()
    ) -> ChangeRecorder:
        return cls(
            settings.memory,
            settings.server_name,
            enabled=settings.remember,
            predicates=predicates,
        )

    def _open(self) -> GraphService:
        with self._lock:
            if self._graph is None:
                from pai_core.memory.memory import Memory

                graph = Memory(self.memory).graph
                known = {p.name for p in graph.list_predicates()}
                for spec in self.predicates:
                    if spec.name not in known:
                        graph.define_predicate(
                            spec.name, spec.cardinality, description=spec.description
                        )
                self._graph = graph
            return self._graph

    def record(
        self, audit_id: str | int, facts: Sequence[ChangeFact], *, at: float | None = None
    ) -> MemoryNote:
        """Write ``facts`` (one transaction) and end the ``ended`` ones; never raises."""
        source = f"{self.server}:{audit_id}"
        if not self.enabled:
            return MemoryNote(
                remembered=False, source=None, detail=f"memory recording is off ({self.setting})"
            )
        if not facts:
            return MemoryNote(remembered=True, facts=0, source=source, detail="nothing to record")
        when = time.time() if at is None else at
        try:
            return self._record(source, facts, when)
        except Exception as exc:  # the change stands; say why it was not remembered
            log.warning("%s: change %s applied but not remembered: %s", self.server, source, exc)
            return MemoryNote(
                remembered=False,
                source=source,
                detail=f"the change was applied but not remembered: {exc}",
            )

    def _record(self, source: str, facts: Sequence[ChangeFact], when: float) -> MemoryNote:
        from pai_core.memory.graph.views import FactIn

        graph = self._open()
        ended = [f for f in facts if f.ended]
        written = [
            FactIn(
                subject=f.subject,
                predicate=f.predicate,
                object=f.object,
                value=f.value,
                subject_type=f.subject_type,
                object_type=f.object_type,
                valid_from=f"{when:.6f}",
                source=source,
                note=f.note or None,
            )
            for f in facts
            if not f.ended
        ]
        closed = 0
        for f in ended:
            closed += len(graph.end(f.subject, f.predicate, at=when))
        superseded: list[str] = []
        count = closed
        if written:
            batch = graph.remember_many(written, "supersede")
            count += batch.written
            for result in batch.results:
                for c in result.conflicts:
                    old = c.existing.object or c.existing.value
                    superseded.append(f"{c.existing.subject} {c.existing.predicate} {old}")
        detail = f"superseded: {'; '.join(superseded)}" if superseded else ""
        if closed:
            detail = "; ".join(x for x in (detail, f"ended {closed} fact(s)") if x)
        return MemoryNote(remembered=True, facts=count, source=source, detail=detail)
