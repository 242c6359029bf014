"""A batch of fact writes inside one write transaction, read and written in bulk.

Deciding a fact needs its entities (by key or alias), its predicate (by alias) and the current
facts of its subject under the same or an exclusive predicate; writing it inserts entities, the
fact and conflicts and closes what it supersedes. One store call each is cheap on SQLite and a
network round trip over Bolt, several per fact. :class:`WriteBatch` reads what a whole batch
touches in a few bulk calls (:meth:`read_names` before the facts are parsed, :meth:`read_facts`
after), keeps it as a view local to the transaction, answers the service from that view, and
buffers every write until :meth:`flush`, which the service calls before commit. The view is
updated by every buffered write, so fact 3 of a batch sees facts 1–2 exactly as the store
would, and nothing the batch reads later can be changed by the buffer: writes are flushed in
the same transaction, under the same writer lock, in a few bulk statements.

Only :meth:`~pai_core.memory.graph.service.GraphService.remember_many` writes through a batch;
the conflict rules themselves stay pure functions (:mod:`pai_core.memory.graph.rules`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

from pai_core.memory.graph.model import Conflict, Entity, Fact, PredicateDef, Probe
from pai_core.memory.graph.store import GraphTx

__all__ = ["WriteBatch"]


class WriteBatch:
    """The store transaction ``tx`` seen through a view read in bulk and a write buffer."""

    def __init__(self, tx: GraphTx) -> None:
        self.tx = tx
        self._aliases: dict[str, str | None] = {}  # predicate alias → predicate (None: not one)
        self._predicates: dict[str, PredicateDef | None] = {}
        self._by_key: dict[str, Entity | None] = {}
        self._by_id: dict[str, Entity] = {}
        self._facts: defaultdict[tuple[str, str], dict[str, Fact]] = defaultdict(dict)
        self._group: dict[str, tuple[str, str]] = {}  # fact id → its (subject, predicate)
        self._probed: set[Probe] = set()
        self._new_entities: list[Entity] = []
        self._types: dict[str, str] = {}
        self._new_facts: list[Fact] = []
        self._closes: dict[str, tuple[float, str | None]] = {}
        self._conflicts: list[Conflict] = []

    # ------------------------------------------------------------ bulk reads
    def read_names(self, predicates: list[str], keys: list[str]) -> None:
        """Read the predicates (normalised names, aliases resolved) and entity keys a batch
        names, in a few store calls."""
        if predicates:
            for name, (alias_of, pred) in self.tx.resolve_predicates(predicates).items():
                self._aliases[name] = alias_of
                self._predicates[alias_of or name] = pred
        if keys:
            entities = self.tx.entities_by_keys(keys)
            self._by_key.update({key: entities.get(key) for key in keys})
            self._by_id.update((e.id, e) for e in entities.values())

    def read_facts(self, writes: list[tuple[Fact, PredicateDef]]) -> None:
        """Read the facts the rules need to decide each ``(new fact, predicate)`` of a batch,
        and their objects, in one store call (two over Bolt)."""
        created = {e.id for e in self._new_entities}
        probes: dict[Probe, None] = {}
        for new, pred in writes:
            for name in (pred.name, *pred.exclusive_with):
                probe = Probe(
                    new.subject_id,
                    name,
                    any_object=name == pred.name and pred.cardinality == "one",
                    object_id=new.object_id,
                    value=new.value,
                )
                self._probed.add(probe)
                if new.subject_id in created or (new.object_id in created and not probe.any_object):
                    continue  # an entity of this batch has no facts in the store yet
                probes[probe] = None
        if not probes:
            return
        facts, objects = self.tx.current_facts(list(probes))
        for fact in facts:
            self._keep(fact)
        for entity in objects.values():
            self._by_id.setdefault(entity.id, entity)

    # ------------------------------------------------------------ the view
    def predicate_for_alias(self, alias: str) -> str | None:
        if alias not in self._aliases:
            self._aliases[alias] = self.tx.predicate_for_alias(alias)
        return self._aliases[alias]

    def predicate(self, name: str) -> PredicateDef | None:
        if name not in self._predicates:
            self._predicates[name] = self.tx.predicate(name)
        return self._predicates[name]

    def entity_by_key(self, key: str) -> Entity | None:
        if key not in self._by_key:  # buffered entities are all in the view: safe to read
            entity = self.tx.entity_by_key(key)
            self._by_key[key] = entity
            if entity is not None:
                self._by_id.setdefault(entity.id, entity)
        return self._by_key[key]

    def entities_by_ids(self, ids: list[str]) -> dict[str, Entity]:
        missing = [i for i in dict.fromkeys(ids) if i not in self._by_id]
        if missing:
            self._by_id.update(self.tx.entities_by_ids(missing))
        return {i: self._by_id[i] for i in ids if i in self._by_id}

    def rivals(self, new: Fact, pred: PredicateDef) -> list[Fact]:
        """The facts not retracted of ``new``'s subject under ``pred`` or a predicate exclusive
        with it whose validity overlaps ``new``'s, oldest first, as far as the rules look:
        under a single-valued ``pred`` all of them, otherwise those with ``new``'s object."""
        out: list[Fact] = []
        for name in (pred.name, *pred.exclusive_with):
            any_object = name == pred.name and pred.cardinality == "one"
            probe = Probe(new.subject_id, name, any_object, new.object_id, new.value)
            assert probe in self._probed, "read_facts was not told about this write"
            out.extend(
                f
                for f in self._facts.get((new.subject_id, name), {}).values()
                if f.overlaps(new.valid_from, new.valid_to)
                and (any_object or f.object_key() == new.object_key())
            )
        return sorted(out, key=lambda f: (f.valid_from, f.recorded_at, f.id))

    # ------------------------------------------------------------ buffered writes
    def insert_entity(self, entity: Entity) -> None:
        self._new_entities.append(entity)
        self._by_key[entity.key] = entity
        self._by_id[entity.id] = entity

    def set_entity_type(self, entity_id: str, type_: str) -> None:
        self._types[entity_id] = type_
        entity = replace(self._by_id[entity_id], type=type_)
        self._by_id[entity_id] = entity
        for key, known in self._by_key.items():
            if known is not None and known.id == entity_id:
                self._by_key[key] = entity

    def _keep(self, fact: Fact) -> None:
        group = (fact.subject_id, fact.predicate)
        self._facts[group][fact.id] = fact
        self._group[fact.id] = group

    def insert_fact(self, fact: Fact) -> None:
        self._new_facts.append(fact)
        self._keep(fact)

    def close_fact(self, fact_id: str, valid_to: float, superseded_by: str | None) -> None:
        self._closes[fact_id] = (valid_to, superseded_by)
        facts = self._facts[self._group[fact_id]]  # only facts of the view are closed here
        facts[fact_id] = replace(facts[fact_id], valid_to=valid_to, superseded_by=superseded_by)

    def insert_conflict(self, conflict: Conflict) -> None:
        self._conflicts.append(conflict)

    def flush(self) -> None:
        """Write the buffer through the store transaction: entities, their types, facts (in
        the order written, which their cursors follow), closes, then conflicts."""
        if self._new_entities:
            self.tx.insert_entities(self._new_entities)
        if self._types:
            self.tx.set_entity_types(list(self._types.items()))
        if self._new_facts:
            self.tx.insert_facts(self._new_facts)
        if self._closes:
            self.tx.close_facts([(i, t, by) for i, (t, by) in self._closes.items()])
        if self._conflicts:
            self.tx.insert_conflicts(self._conflicts)
        self._new_entities, self._types, self._new_facts = [], {}, []
        self._closes, self._conflicts = {}, []
