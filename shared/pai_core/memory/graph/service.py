"""The fact graph's rules: resolution of names and predicates, conflict detection, history.

Every write runs in one store write transaction: resolve entities (keys, aliases) and the
predicate (aliases), look up the current facts of the same subject under the same or an
exclusive predicate, decide (idempotent no-op, conflict, or plain write), and apply the chosen
policy — ``supersede`` (default: close the old fact's validity where the new one starts),
``reject`` (write nothing) or ``flag`` (keep both and open a conflict). Nothing is ever deleted:
superseded facts keep their history and retractions only stamp ``retracted_at``.

The rules themselves are pure functions in :mod:`pai_core.memory.graph.rules`; this module
resolves names, reads the facts a rule needs and applies the outcome. A batch of facts
(``remember_many``, which ``remember`` is a batch of one) is read and written through a
:class:`~pai_core.memory.graph.batch.WriteBatch`: what the batch names is read in bulk first,
each fact is decided against the store plus the facts written before it in the batch, and the
writes are flushed in bulk before commit (a few round trips per batch over Bolt, not per fact). Inputs are
:class:`~pai_core.memory.graph.views.FactIn` models and results the output models of
:mod:`~pai_core.memory.graph.views`, so MCP tools pass them straight through.

For other layers (vault, search, the servers' change records): ``names()`` for linking text to
entities, ``facts_since()`` for incremental indexing, ``neighbours()`` for graph
proximity, ``end()`` to close what stopped being true.
"""

from __future__ import annotations

import secrets
import time
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import replace
from typing import Any

from pai_core.errors import Conflict as ConflictError
from pai_core.errors import InvalidInput, NotFound
from pai_core.memory.graph import rules
from pai_core.memory.graph.batch import WriteBatch
from pai_core.memory.graph.model import (
    MAX_VALUE,
    Conflict,
    Entity,
    Fact,
    PredicateDef,
    clean_text,
    entity_key,
    normalise_predicate,
)
from pai_core.memory.graph.predicates import BUILTIN_PREDICATES, predicate_view
from pai_core.memory.graph.rules import POLICIES, Policy
from pai_core.memory.graph.store import GraphStore, GraphTx
from pai_core.memory.graph.views import (
    BatchResult,
    ConflictReport,
    ConflictView,
    EdgeView,
    EntityView,
    FactIn,
    FactPage,
    FactView,
    MergeResult,
    PredicateView,
    TimelineGroup,
    TimelineView,
    TraverseView,
    WriteResult,
)
from pai_core.memory.timeparse import iso, parse_time

__all__ = ["BUILTIN_PREDICATES", "MAX_BATCH", "FactIn", "GraphService", "Policy"]

MAX_BATCH = 1000
MAX_ALIASES = 32  # per predicate, in one define_predicate call
MAX_EXCLUSIONS = 32


_Reads = GraphTx | WriteBatch  # what the lookup helpers read names through


def _new_id(prefix: str) -> str:
    return f"{prefix}{int(time.time() * 1000):011x}{secrets.token_hex(5)}"


class GraphService:
    """The bi-temporal fact graph over a :class:`GraphStore`."""

    def __init__(self, store: GraphStore, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock
        self._seeded = False

    # ------------------------------------------------------------ helpers
    def _seed(self, tx: GraphTx) -> None:
        if self._seeded:
            return
        have = {p.name for p in tx.predicates()}
        missing = [p for p in BUILTIN_PREDICATES if p.name not in have]
        if missing:
            tx.upsert_predicates(missing)
        self._seeded = True

    def _write(self) -> Any:
        return self.store.write()

    def _time(self, value: str | float | None, field: str, default: float | None) -> float | None:
        if value is None or value == "":
            return default
        return parse_time(value, field=field)

    def _resolve_predicate(self, tx: _Reads, name: str, field: str = "predicate") -> PredicateDef:
        canon = normalise_predicate(name, field=field)
        aliased = tx.predicate_for_alias(canon)
        if aliased:
            canon = aliased
        return tx.predicate(canon) or PredicateDef(canon, "many")

    def _entity(self, tx: _Reads, name: str, field: str) -> Entity:
        found = tx.entity_by_key(entity_key(name, field=field))
        if found is None:
            raise NotFound(
                f"no entity named {name!r}",
                field=field,
                hint="Check the name or list facts with query_facts.",
            )
        return found

    def _ensure_entity(self, tx: WriteBatch, name: str, type_: str | None, field: str) -> Entity:
        key = entity_key(name, field=field)
        found = tx.entity_by_key(key)
        if found is not None:
            if type_ and found.type == "thing":
                tx.set_entity_type(found.id, clean_text(type_, field=f"{field}_type", max_len=64))
            return found
        entity = Entity(
            id=_new_id("e"),
            name=clean_text(name, field=field),
            key=key,
            type=clean_text(type_, field=f"{field}_type", max_len=64) if type_ else "thing",
            created_at=self.clock(),
        )
        tx.insert_entity(entity)
        return entity

    def _view(
        self,
        tx: _Reads,
        fact: Fact,
        names: dict[str, Entity] | None = None,
        now: float | None = None,
    ) -> FactView:
        now = self.clock() if now is None else now
        ids = [fact.subject_id] + ([fact.object_id] if fact.object_id else [])
        names = names if names is not None else tx.entities_by_ids(ids)
        subject = names.get(fact.subject_id)
        obj = names.get(fact.object_id) if fact.object_id else None
        return FactView(
            id=fact.id,
            subject=subject.name if subject else fact.subject_id,
            predicate=fact.predicate,
            object=obj.name if obj else None,
            value=fact.value,
            valid_from=iso(fact.valid_from) or "",
            valid_to=iso(fact.valid_to),
            recorded_at=iso(fact.recorded_at) or "",
            retracted_at=iso(fact.retracted_at),
            current=fact.retracted_at is None and fact.valid_at(now),
            source=fact.source,
            confidence=fact.confidence,
            note=fact.note,
            superseded_by=fact.superseded_by,
        )

    def _views(self, tx: GraphTx, facts: list[Fact]) -> list[FactView]:
        ids = [f.subject_id for f in facts] + [f.object_id for f in facts if f.object_id]
        names = tx.entities_by_ids(ids)
        now = self.clock()
        return [self._view(tx, f, names, now) for f in facts]

    # ------------------------------------------------------------ writing
    def remember(self, item: FactIn, policy: Policy = "supersede") -> WriteResult:
        """Write one fact (see :meth:`remember_many`)."""
        batch = self.remember_many([item], policy)
        return batch.results[0]

    def remember_many(self, items: Sequence[FactIn], policy: Policy = "supersede") -> BatchResult:
        """Write facts in one transaction: all or nothing. Under ``reject``, any conflict
        writes nothing (not even new entities)."""
        if policy not in POLICIES:
            raise InvalidInput(
                f"policy {policy!r} is unknown",
                field="policy",
                hint="Use supersede, reject or flag.",
            )
        if not items:
            raise InvalidInput("no facts given", field="facts")
        if len(items) > MAX_BATCH:
            raise InvalidInput(f"at most {MAX_BATCH} facts per batch", field="facts")
        try:
            with self._write() as tx:
                self._seed(tx)
                batch = WriteBatch(tx)
                batch.read_names(*_names(items))
                parsed = [
                    self._parse(batch, item, "" if i == 0 else f"facts[{i}].")
                    for i, item in enumerate(items)
                ]
                batch.read_facts(parsed)
                results = [self._decide(batch, new, pred, policy) for new, pred in parsed]
                if policy == "reject" and any(r.status == "rejected" for r in results):
                    raise _Rollback(results)
                batch.flush()
        except _Rollback as rollback:
            # All or nothing: facts that would have been written were rolled back too.
            undone = [
                r if r.status != "written" else WriteResult(status="rejected")
                for r in rollback.results
            ]
            return BatchResult(status="rejected", written=0, unchanged=0, results=undone)
        return BatchResult(
            status="written",
            written=sum(r.status == "written" for r in results),
            unchanged=sum(r.status == "unchanged" for r in results),
            results=results,
        )

    def _parse(self, tx: WriteBatch, item: FactIn, where: str) -> tuple[Fact, PredicateDef]:
        """The new fact an input describes, its names resolved (entities created as needed)."""
        now = self.clock()
        pred = self._resolve_predicate(tx, item.predicate, f"{where}predicate")
        if (item.object is None) == (item.value is None):
            raise InvalidInput(
                "give exactly one of object (an entity) or value (a literal)",
                field=f"{where}object",
            )
        value = (
            clean_text(item.value, field=f"{where}value", max_len=MAX_VALUE, allow_newlines=True)
            if item.value is not None
            else None
        )
        valid_from = self._time(item.valid_from, f"{where}valid_from", now)
        valid_to = self._time(item.valid_to, f"{where}valid_to", None)
        assert valid_from is not None
        if valid_to is not None and valid_to <= valid_from:
            raise InvalidInput("valid_to must be after valid_from", field=f"{where}valid_to")
        if not 0.0 <= item.confidence <= 1.0:
            raise InvalidInput("confidence must be between 0 and 1", field=f"{where}confidence")
        source = clean_text(item.source, field=f"{where}source", max_len=500) if item.source else ""
        note = (
            clean_text(item.note, field=f"{where}note", max_len=MAX_VALUE, allow_newlines=True)
            if item.note
            else ""
        )
        subject = self._ensure_entity(tx, item.subject, item.subject_type, f"{where}subject")
        obj = (
            self._ensure_entity(tx, item.object, item.object_type, f"{where}object")
            if item.object is not None
            else None
        )
        if obj is not None and obj.id == subject.id:
            raise InvalidInput("a fact cannot relate an entity to itself", field=f"{where}object")
        fact = Fact(
            id=_new_id("f"),
            subject_id=subject.id,
            predicate=pred.name,
            object_id=obj.id if obj else None,
            value=value,
            valid_from=valid_from,
            valid_to=valid_to,
            recorded_at=now,
            source=source,
            confidence=item.confidence,
            note=note,
        )
        return fact, pred

    def _decide(self, tx: WriteBatch, new: Fact, pred: PredicateDef, policy: Policy) -> WriteResult:
        """Apply the rules to one parsed fact of a batch against what the store and the batch
        so far hold, and write the outcome into the batch."""
        existing = tx.rivals(new, pred)
        same = rules.duplicate_of(new, existing)
        if same is not None:
            return WriteResult(status="unchanged", fact=self._view(tx, same))
        outcome = rules.resolve(new, rules.clashes(new, pred, existing), policy)
        if outcome.fact is None:
            new_view = self._view(tx, new)
            reports = [
                ConflictReport(
                    rule=step.clash.rule,
                    existing=self._view(tx, step.clash.existing),
                    new=new_view,
                    action=step.action,
                )
                for step in outcome.steps
            ]
            return WriteResult(status="rejected", fact=None, conflicts=reports)
        written = outcome.fact
        opened: list[Conflict | None] = []
        for step in outcome.steps:
            conflict = None
            if step.action == "superseded-existing":
                tx.close_fact(step.clash.existing.id, written.valid_from, written.id)
            elif step.action == "flagged":
                conflict = Conflict(
                    id=_new_id("c"),
                    fact_id=written.id,
                    existing_fact_id=step.clash.existing.id,
                    rule=step.clash.rule,
                    status="open",
                    created_at=written.recorded_at,
                )
            opened.append(conflict)
        tx.insert_fact(written)
        written_view = self._view(tx, written)
        out: list[ConflictReport] = []
        for step, conflict in zip(outcome.steps, opened, strict=True):
            if conflict is not None:
                tx.insert_conflict(conflict)
            out.append(
                ConflictReport(
                    rule=step.clash.rule,
                    existing=self._view(tx, step.closed or step.clash.existing),
                    new=written_view,
                    action=step.action,
                    conflict_id=conflict.id if conflict else None,
                )
            )
        return WriteResult(status="written", fact=written_view, conflicts=out)

    def end(self, subject: str, predicate: str, *, at: float | None = None) -> list[FactView]:
        """Close the validity of every current ``subject PREDICATE …`` fact at ``at`` (default
        now): it stopped being true in the world, which is not a retraction (it was true)."""
        when = self.clock() if at is None else at
        with self._write() as tx:
            self._seed(tx)
            entity = tx.entity_by_key(entity_key(subject, field="subject"))
            if entity is None:
                return []
            pred = self._resolve_predicate(tx, predicate)
            closed = []
            for f in tx.facts(subject_id=entity.id, predicates=[pred.name], valid_at=when):
                if f.valid_to is None and f.valid_from < when:
                    tx.close_fact(f.id, when, None)
                    closed.append(replace(f, valid_to=when))
            return self._views(tx, closed)

    def retract(self, fact_id: str, reason: str = "") -> FactView:
        with self._write() as tx:
            fact = tx.fact(fact_id)
            if fact is None:
                raise NotFound(
                    f"no fact {fact_id!r}",
                    field="fact_id",
                    hint="Find fact ids with query_facts or get_entity.",
                )
            if fact.retracted_at is None:
                tx.retract_fact(
                    fact_id,
                    self.clock(),
                    clean_text(reason, field="reason", max_len=500) if reason else "",
                )
            return self._view(tx, tx.fact(fact_id))

    # ------------------------------------------------------------ reading
    def _read_time(self, as_of: str | None) -> float:
        return self._time(as_of, "as_of", self.clock()) or self.clock()

    def _known(self, known_at: str | None) -> float | None:
        return self._time(known_at, "known_at", None)

    def get_entity(
        self,
        name: str,
        *,
        as_of: str | None = None,
        include_history: bool = False,
        limit: int = 100,
        known_at: str | None = None,
    ) -> EntityView:
        t = self._read_time(as_of)
        known = self._known(known_at)
        with self.store.read() as tx:
            entity = self._entity(tx, name, "name")
            kw: dict[str, Any] = (
                {"include_retracted": True}
                if include_history
                else {"valid_at": t, "known_at": known}
            )
            out = tx.facts(subject_id=entity.id, limit=limit + 1, **kw)
            inc = tx.facts(object_id=entity.id, limit=limit + 1, **kw)
            truncated = len(out) > limit or len(inc) > limit
            return EntityView(
                id=entity.id,
                name=entity.name,
                type=entity.type,
                aliases=tx.aliases(entity.id),
                outgoing=self._views(tx, out[:limit]),
                incoming=self._inverted(tx, entity.name, self._views(tx, inc[:limit])),
                truncated=truncated,
            )

    @staticmethod
    def _inverted(tx: GraphTx, name: str, incoming: list[FactView]) -> list[FactView]:
        """Incoming facts as read from the entity: under the predicate's inverse where one is
        defined (``web RUNS_ON host1`` is listed at host1 as ``host1 HOSTS web``; same fact id)."""
        inverse: dict[str, str | None] = {}
        out = []
        for view in incoming:
            if view.predicate not in inverse:
                pred = tx.predicate(view.predicate)
                inverse[view.predicate] = pred.inverse if pred else None
            inv = inverse[view.predicate]
            out.append(
                view.model_copy(update={"subject": name, "predicate": inv, "object": view.subject})
                if inv
                else view
            )
        return out

    def query(
        self,
        *,
        subject: str | None = None,
        predicate: str | None = None,
        object: str | None = None,
        value: str | None = None,
        as_of: str | None = None,
        include_history: bool = False,
        limit: int = 50,
        offset: int = 0,
        known_at: str | None = None,
    ) -> FactPage:
        if limit < 1 or limit > 500:
            raise InvalidInput("limit must be 1..500", field="limit")
        t = self._read_time(as_of)
        with self.store.read() as tx:
            kw: dict[str, Any] = {}
            if subject:
                kw["subject_id"] = self._entity(tx, subject, "subject").id
            if object:
                kw["object_id"] = self._entity(tx, object, "object").id
            if predicate:
                pred = self._resolve_predicate(tx, predicate)
                kw["predicates"] = [pred.name]
            if value is not None:
                kw["value"] = value
            if not kw:
                raise InvalidInput(
                    "give at least one of subject, predicate, object or value", field="subject"
                )
            if include_history:
                kw["include_retracted"] = True
            else:
                kw["valid_at"] = t
                kw["known_at"] = self._known(known_at)
            facts = tx.facts(limit=limit + 1, offset=offset, **kw)
            more = len(facts) > limit
            return FactPage(
                facts=self._views(tx, facts[:limit]), next_offset=offset + limit if more else None
            )

    def traverse(
        self,
        start: str,
        *,
        depth: int = 2,
        predicates: list[str] | None = None,
        as_of: str | None = None,
        limit: int = 200,
        known_at: str | None = None,
    ) -> TraverseView:
        if not 1 <= depth <= 4:
            raise InvalidInput("depth must be 1..4", field="depth")
        t = self._read_time(as_of)
        known = self._known(known_at)
        with self.store.read() as tx:
            root = self._entity(tx, start, "start")
            preds = (
                [self._resolve_predicate(tx, p).name for p in predicates] if predicates else None
            )
            seen = {root.id: 0}
            edges: dict[str, Fact] = {}
            queue = deque([root.id])
            truncated = False
            while queue:
                node = queue.popleft()
                if seen[node] >= depth:
                    continue
                for f in tx.facts(
                    entity_id=node,
                    predicates=preds,
                    valid_at=t,
                    known_at=known,
                    limit=limit + 1,
                ):
                    if len(edges) >= limit:
                        truncated = True
                        break
                    edges[f.id] = f
                    other = f.object_id if f.subject_id == node else f.subject_id
                    if other and other not in seen:
                        seen[other] = seen[node] + 1
                        queue.append(other)
            names = tx.entities_by_ids(list(seen))
            nodes = [
                {"name": names[i].name, "type": names[i].type, "depth": d}
                for i, d in sorted(seen.items(), key=lambda kv: kv[1])
                if i in names
            ]
            return TraverseView(
                start=root.name,
                nodes=nodes,
                edges=[
                    EdgeView(
                        id=f.id,
                        subject=names[f.subject_id].name if f.subject_id in names else f.subject_id,
                        predicate=f.predicate,
                        object=names[f.object_id].name
                        if f.object_id and f.object_id in names
                        else None,
                        value=f.value,
                    )
                    for f in edges.values()
                ],
                truncated=truncated,
            )

    def timeline(self, *, since: str, until: str | None = None, limit: int = 500) -> TimelineView:
        t0 = parse_time(since, field="since")  # required: an empty since is refused, not "now"
        t1 = self._time(until, "until", self.clock())
        assert t0 is not None and t1 is not None
        if t1 < t0:
            raise InvalidInput("until is before since", field="until")
        with self.store.read() as tx:
            facts = tx.timeline(t0, t1, limit + 1)
            truncated = len(facts) > limit
            facts = facts[:limit]
            names = tx.entities_by_ids(
                [f.subject_id for f in facts] + [f.object_id for f in facts if f.object_id]
            )
            project_of = self._projects(tx, facts)
            groups: dict[str, list[dict[str, str | None]]] = defaultdict(list)
            for fact in facts:
                subject = names[fact.subject_id].name if fact.subject_id in names else "?"
                obj = names[fact.object_id].name if fact.object_id in names else fact.value
                what = f"{subject} {fact.predicate} {obj}"
                # A fact recorded as it became true is one event, not two.
                became = None if abs(fact.valid_from - fact.recorded_at) < 1 else fact.valid_from
                for kind, stamp in (
                    ("recorded", fact.recorded_at),
                    ("valid_from", became),
                    ("ended", fact.valid_to),
                    ("retracted", fact.retracted_at),
                ):
                    if stamp is not None and t0 <= stamp <= t1:
                        groups[project_of.get(fact.subject_id, subject)].append(
                            {"at": iso(stamp), "event": kind, "fact": what, "fact_id": fact.id}
                        )
            ordered = sorted(groups.items(), key=lambda kv: -len(kv[1]))
            return TimelineView(
                since=iso(t0) or "",
                until=iso(t1) or "",
                groups=[
                    TimelineGroup(group=g, events=sorted(ev, key=lambda e: e["at"] or ""))
                    for g, ev in ordered
                ],
                total_events=sum(len(ev) for ev in groups.values()),
                truncated=truncated,
            )

    def _projects(self, tx: GraphTx, facts: list[Fact]) -> dict[str, str]:
        """Subject id → project name, via PART_OF (or the subject itself if it is a project)."""
        subjects = list({f.subject_id for f in facts})
        parents = {
            f.subject_id: f.object_id
            for f in tx.facts(subject_ids=subjects, predicates=["PART_OF"], limit=len(subjects) * 4)
            if f.object_id
        }
        names = tx.entities_by_ids(subjects + list(parents.values()))
        out: dict[str, str] = {}
        for sid in subjects:
            entity = names.get(sid)
            if entity and entity.type.lower() == "project":
                out[sid] = entity.name
            elif sid in parents and parents[sid] in names:
                out[sid] = names[parents[sid]].name
        return out

    # ------------------------------------------------------------ conflicts
    def list_conflicts(
        self, status: str | None = "open", limit: int = 50, offset: int = 0
    ) -> list[ConflictView]:
        if status not in (None, "open", "resolved"):
            raise InvalidInput("status must be open, resolved or empty", field="status")
        with self.store.read() as tx:
            return [self._conflict_view(tx, c) for c in tx.conflicts(status, limit, offset)]

    def _conflict_view(self, tx: GraphTx, c: Conflict) -> ConflictView:
        new, old = tx.fact(c.fact_id), tx.fact(c.existing_fact_id)
        return ConflictView(
            id=c.id,
            rule=c.rule,
            status=c.status,
            created_at=iso(c.created_at) or "",
            resolved_at=iso(c.resolved_at),
            resolution=c.resolution,
            new=self._view(tx, new) if new else None,
            existing=self._view(tx, old) if old else None,
        )

    def resolve_conflict(self, conflict_id: str, keep: str, note: str = "") -> ConflictView:
        if keep not in ("new", "existing", "both"):
            raise InvalidInput("keep must be new, existing or both", field="keep")
        with self._write() as tx:
            c = tx.conflict(conflict_id)
            if c is None:
                raise NotFound(
                    f"no conflict {conflict_id!r}",
                    field="conflict_id",
                    hint="List open conflicts with list_conflicts.",
                )
            if c.status != "open":
                raise ConflictError(f"conflict {conflict_id} is already resolved")
            now = self.clock()
            if keep == "new":
                old, new = tx.fact(c.existing_fact_id), tx.fact(c.fact_id)
                if old and new and old.valid_from <= new.valid_from:
                    tx.close_fact(old.id, new.valid_from, new.id)
                elif old:
                    tx.retract_fact(old.id, now, "conflict resolved: kept the newer fact")
            elif keep == "existing":
                tx.retract_fact(c.fact_id, now, "conflict resolved: kept the existing fact")
            tx.resolve_conflict(conflict_id, now, f"kept {keep}" + (f": {note}" if note else ""))
            return self._conflict_view(tx, tx.conflict(conflict_id))

    # ------------------------------------------------------------ schema & entities
    def define_predicate(
        self,
        name: str,
        cardinality: str = "many",
        *,
        aliases: list[str] | None = None,
        inverse: str | None = None,
        exclusive_with: list[str] | None = None,
        description: str = "",
    ) -> PredicateView:
        if cardinality not in ("one", "many"):
            raise InvalidInput("cardinality must be one or many", field="cardinality")
        for field, names, cap in (
            ("aliases", aliases, MAX_ALIASES),
            ("exclusive_with", exclusive_with, MAX_EXCLUSIONS),
        ):
            if names and len(names) > cap:
                raise InvalidInput(
                    f"{field} has {len(names)} names; a predicate has at most {cap}",
                    field=field,
                    hint=f"Declare the {cap} that matter most; nothing was changed.",
                )
        canon = normalise_predicate(name, field="name")
        alias_names = tuple(normalise_predicate(a, field="aliases") for a in aliases or [])
        excl = tuple(normalise_predicate(e, field="exclusive_with") for e in exclusive_with or [])
        inv = normalise_predicate(inverse, field="inverse") if inverse else None
        if canon in alias_names or canon in excl:
            raise InvalidInput("a predicate cannot alias or exclude itself", field="aliases")
        with self._write() as tx:
            self._seed(tx)
            for alias in alias_names:
                owner = tx.predicate_for_alias(alias)
                if (owner and owner != canon) or tx.predicate(alias):
                    raise ConflictError(
                        f"{alias} already names predicate {owner or alias}",
                        hint="Choose another alias.",
                    )
            pred = PredicateDef(canon, cardinality, inv, description, alias_names, excl)  # type: ignore[arg-type]
            tx.upsert_predicate(pred)
            for other in excl:  # exclusion is symmetric
                existing = tx.predicate(other) or PredicateDef(other, "many")
                if canon not in existing.exclusive_with:
                    tx.upsert_predicate(
                        replace(existing, exclusive_with=(*existing.exclusive_with, canon))
                    )
            return predicate_view(pred)

    def list_predicates(self) -> list[PredicateView]:
        with self._write() as tx:
            self._seed(tx)
            return [predicate_view(p) for p in tx.predicates()]

    def add_alias(self, entity: str, alias: str) -> EntityView:
        with self._write() as tx:
            target = self._entity(tx, entity, "entity")
            key = entity_key(alias, field="alias")
            owner = tx.entity_by_key(key)
            if owner is not None and owner.id != target.id:
                raise ConflictError(
                    f"{alias!r} already names entity {owner.name!r}",
                    hint="Use merge_entities to make them one entity.",
                )
            tx.add_alias(key, clean_text(alias, field="alias"), target.id)
        return self.get_entity(target.name)

    def merge_entities(self, source: str, target: str) -> MergeResult:
        with self._write() as tx:
            src = self._entity(tx, source, "source")
            dst = self._entity(tx, target, "target")
            if src.id == dst.id:
                raise InvalidInput("cannot merge an entity into itself", field="source")
            moved = tx.repoint(src.id, dst.id)
            tx.add_alias(src.key, src.name, dst.id)
            tx.mark_merged(src.id, dst.id)
            dups = 0
            seen: set[tuple[str, str, str | None, str | None]] = set()
            for f in tx.facts(entity_id=dst.id, limit=100000):
                sig = (f.subject_id, f.predicate, f.object_id, f.value)
                if sig in seen and f.valid_to is None:
                    tx.retract_fact(f.id, self.clock(), "duplicate after merge")
                    dups += 1
                seen.add(sig)
        return MergeResult(
            target=self.get_entity(dst.name), facts_moved=moved, duplicates_retracted=dups
        )

    # ------------------------------------------------------------ API for other layers
    def names(self) -> list[str]:
        """Every entity's name (merged ones excluded), in one read."""
        with self.store.read() as tx:
            return [name for _, name in tx.entity_names()]

    def facts_since(self, cursor: int, limit: int = 5000) -> tuple[list[FactView], int]:
        """Facts written after ``cursor`` (in commit order) and the cursor to pass next time,
        for incremental indexing: no fact is skipped, whichever process wrote it."""
        with self.store.read() as tx:
            rows = tx.facts_after(cursor, limit)
            views = self._views(tx, [f for _, f in rows])
        return views, (rows[-1][0] if rows else cursor)

    def fact_view(self, fact_id: str) -> FactView | None:
        with self.store.read() as tx:
            fact = tx.fact(fact_id)
            return self._view(tx, fact) if fact else None

    def neighbours(self, names: list[str]) -> set[str]:
        """Names of entities one hop from any of ``names`` (and the names themselves)."""
        out: set[str] = set()
        with self.store.read() as tx:
            for name in names:
                entity = tx.entity_by_key(entity_key(name))
                if entity is None:
                    continue
                out.add(entity.name)
                views = self._views(
                    tx, tx.facts(entity_id=entity.id, valid_at=self.clock(), limit=200)
                )
                out.update(v.object or "" for v in views)
                out.update(v.subject for v in views)
        out.discard("")
        return out

    def stats(self) -> dict[str, int]:
        with self.store.read() as tx:
            return {"facts": tx.count_facts(), "entities": tx.count_entities()}


def _names(items: Sequence[FactIn]) -> tuple[list[str], list[str]]:
    """The normalised predicates and the entity keys a batch names, for one bulk read (a name
    that does not normalise is left for :meth:`GraphService._parse` to report)."""
    predicates: list[str] = []
    keys: list[str] = []
    for item in items:
        with suppress(InvalidInput):
            predicates.append(normalise_predicate(item.predicate))
        for name in (item.subject, item.object):
            if name is not None:
                with suppress(InvalidInput):
                    keys.append(entity_key(name))
    return predicates, keys


class _Rollback(Exception):
    """Raised inside a write transaction to roll back a batch rejected by policy."""

    def __init__(self, results: list[WriteResult]) -> None:
        super().__init__("rejected")
        self.results = results
