"""The fact graph on a Neo4j server over Bolt (Neo4j 5 community, Enterprise clusters, Aura).

Chosen with ``graph_backend = "neo4j"`` in ``[memory]`` (``PAI_MEMORY_GRAPH_BACKEND``); the
driver (``pip install 'pai-core[neo4j]'``) is imported only then.

Model: every record is a node with plain properties, one label per kind (``PaiEntity``,
``PaiAlias``, ``PaiPredicate``, ``PaiPredAlias``, ``PaiFact``, ``PaiConflict``). Facts are
*reified* nodes rather than relationships: a fact may point at a literal value instead of an
entity, it is closed, superseded and retracted in place (four time properties: valid from/to,
recorded, retracted), and every read the service makes is a property lookup (subject,
predicate, object, time range) that a node range index answers directly. Relationship property
indexes would serve the same lookups only on Neo4j 5.7+, and literal values would need a dummy
node each.

Transactions are explicit, and causally chained: all sessions share one bookmark manager, so
a read sees every write this store committed before it. A write transaction first bumps the ``PaiMeta {key: 'writer'}``
node: the node's write lock (held to commit) serialises writers the way SQLite's
``BEGIN IMMEDIATE`` does, and its ``seq`` counter gives each inserted fact the commit-ordered
cursor :meth:`facts_after` pages by. Starting a transaction is retried on transient errors
(leader switch, deadlock detection, a restarting server) with backoff up to ``retry_s``; an
error inside the block or at commit rolls the whole transaction back and is raised as
:class:`~pai_core.errors.BackendUnavailable` (never a silent fallback, never a partial write).

A batch of writes (:mod:`pai_core.memory.graph.batch`) is read and written with a few bulk
statements that ``UNWIND`` a list parameter: a round trip per statement, not per fact.

Every query is a module constant with ``$parameters``: names, predicates and values never enter
query text (a test checks the module and runs the contract suite with hostile names). The
Cypher is the subset ArcadeDB's Bolt plugin (used in the tests) and Neo4j 5 both accept:
``CREATE CONSTRAINT … IF NOT EXISTS … REQUIRE … IS UNIQUE``, ``CREATE INDEX … IF NOT EXISTS``,
``MERGE … ON CREATE SET``, ``UNWIND`` of a list of maps read as ``row.key``, ``OPTIONAL
MATCH``, ``coalesce``; no APOC, no ``CALL … IN TRANSACTIONS``. Where the two plan the same text
differently, the text ArcadeDB plans well is used and the query says so (``_CURRENT_FACTS``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import fields
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from pai_core.errors import BackendUnavailable, MissingDependency
from pai_core.errors import Conflict as ConflictError
from pai_core.memory.graph.model import Conflict, Entity, Fact, PredicateDef, Probe

if TYPE_CHECKING:
    import neo4j

    from pai_core.memory.db import CommitHook
    from pai_core.memory.graph.migrate import GraphDump
    from pai_core.settings import MemorySettings

__all__ = ["SCHEMA", "Neo4jGraphStore"]

log = logging.getLogger(__name__)

# ----------------------------------------------------------------------------- schema
SCHEMA: tuple[str, ...] = (
    "CREATE CONSTRAINT pai_entity_id IF NOT EXISTS FOR (n:PaiEntity) REQUIRE n.id IS UNIQUE",
    "CREATE CONSTRAINT pai_entity_key IF NOT EXISTS FOR (n:PaiEntity) REQUIRE n.key IS UNIQUE",
    "CREATE CONSTRAINT pai_alias_key IF NOT EXISTS FOR (n:PaiAlias) REQUIRE n.key IS UNIQUE",
    "CREATE CONSTRAINT pai_predicate_name IF NOT EXISTS FOR (n:PaiPredicate) "
    "REQUIRE n.name IS UNIQUE",
    "CREATE CONSTRAINT pai_pred_alias IF NOT EXISTS FOR (n:PaiPredAlias) REQUIRE n.alias IS UNIQUE",
    "CREATE CONSTRAINT pai_fact_id IF NOT EXISTS FOR (n:PaiFact) REQUIRE n.id IS UNIQUE",
    "CREATE CONSTRAINT pai_conflict_id IF NOT EXISTS FOR (n:PaiConflict) REQUIRE n.id IS UNIQUE",
    "CREATE CONSTRAINT pai_meta_key IF NOT EXISTS FOR (n:PaiMeta) REQUIRE n.key IS UNIQUE",
    "CREATE INDEX pai_alias_entity IF NOT EXISTS FOR (n:PaiAlias) ON (n.entity_id)",
    "CREATE INDEX pai_pred_alias_predicate IF NOT EXISTS FOR (n:PaiPredAlias) ON (n.predicate)",
    "CREATE INDEX pai_fact_subject IF NOT EXISTS FOR (n:PaiFact) ON (n.subject_id)",
    "CREATE INDEX pai_fact_object IF NOT EXISTS FOR (n:PaiFact) ON (n.object_id)",
    "CREATE INDEX pai_fact_predicate IF NOT EXISTS FOR (n:PaiFact) ON (n.predicate)",
    "CREATE INDEX pai_fact_recorded IF NOT EXISTS FOR (n:PaiFact) ON (n.recorded_at)",
    "CREATE INDEX pai_fact_valid_from IF NOT EXISTS FOR (n:PaiFact) ON (n.valid_from)",
    "CREATE INDEX pai_fact_seq IF NOT EXISTS FOR (n:PaiFact) ON (n.seq)",
    "CREATE INDEX pai_conflict_status IF NOT EXISTS FOR (n:PaiConflict) ON (n.status)",
)
_WRITER = (
    "MERGE (m:PaiMeta {key: 'writer'}) ON CREATE SET m.seq = 0, m.held = 0 "
    "SET m.held = m.held + 1 RETURN m.seq AS seq"
)

# ----------------------------------------------------------------------------- entities
_ENTITY = (
    " RETURN e.id AS id, e.name AS name, e.key AS key, e.type AS type, "
    "e.created_at AS created_at, e.merged_into AS merged_into"
)
# Bulk reads and writes UNWIND a list parameter: one round trip for a whole batch, each row an
# index lookup (a list of maps, rows read as r.key: both Neo4j 5 and ArcadeDB accept it).
_ENTITY_BY_KEY = "MATCH (e:PaiEntity {key: $key})" + _ENTITY
_ENTITIES_BY_KEYS = "UNWIND $keys AS k MATCH (e:PaiEntity {key: k})" + _ENTITY
_ENTITY_BY_ID = "MATCH (e:PaiEntity {id: $id})" + _ENTITY
_ENTITIES_BY_IDS = "MATCH (e:PaiEntity) WHERE e.id IN $ids" + _ENTITY
_INSERT_ENTITIES = "UNWIND $rows AS r CREATE (e:PaiEntity) SET e = r"
_SET_TYPES = "UNWIND $rows AS r MATCH (e:PaiEntity {id: r.id}) SET e.type = r.type"
_ADD_ALIAS = "MERGE (a:PaiAlias {key: $key}) SET a.alias = $alias, a.entity_id = $entity_id"
_ALIAS_OWNER = "MATCH (a:PaiAlias {key: $key}) RETURN a.entity_id AS entity_id"
_ALIAS_OWNERS = (
    "UNWIND $keys AS k MATCH (a:PaiAlias {key: k}) RETURN a.key AS key, a.entity_id AS entity_id"
)
_ALIASES = "MATCH (a:PaiAlias {entity_id: $entity_id}) RETURN a.alias AS alias ORDER BY alias"
_MARK_MERGED = "MATCH (e:PaiEntity {id: $source}) SET e.merged_into = $target"
_MOVE_ALIASES = "MATCH (a:PaiAlias {entity_id: $source}) SET a.entity_id = $target"
_REPOINT_SUBJECT = (
    "MATCH (f:PaiFact {subject_id: $source}) SET f.subject_id = $target RETURN count(f) AS n"
)
_REPOINT_OBJECT = (
    "MATCH (f:PaiFact {object_id: $source}) SET f.object_id = $target RETURN count(f) AS n"
)
_ENTITY_NAMES = "MATCH (e:PaiEntity) WHERE e.merged_into IS NULL RETURN e.id AS id, e.name AS name"
_COUNT_ENTITIES = "MATCH (e:PaiEntity) WHERE e.merged_into IS NULL RETURN count(e) AS n"

# ----------------------------------------------------------------------------- predicates
_PREDICATE_RETURN = (
    " RETURN p.name AS name, p.cardinality AS cardinality, p.inverse AS inverse, "
    "p.description AS description, p.aliases AS aliases, p.exclusive_with AS exclusive_with, "
    "p.builtin AS builtin"
)
_PREDICATE = "MATCH (p:PaiPredicate {name: $name})" + _PREDICATE_RETURN
_PREDICATES = "MATCH (p:PaiPredicate)" + _PREDICATE_RETURN + " ORDER BY name"
_PREDICATE_FOR_ALIAS = "MATCH (a:PaiPredAlias {alias: $alias}) RETURN a.predicate AS predicate"
_RESOLVE_PREDICATES = (
    "UNWIND $names AS n OPTIONAL MATCH (a:PaiPredAlias {alias: n}) "
    "WITH n, a.predicate AS alias_of "
    "OPTIONAL MATCH (p:PaiPredicate {name: coalesce(alias_of, n)})"
    + _PREDICATE_RETURN
    + ", n AS asked, alias_of AS alias_of"
)
_UPSERT_PREDICATES = "UNWIND $rows AS r MERGE (p:PaiPredicate {name: r.name}) SET p += r.props"
_DROP_PRED_ALIASES = "UNWIND $names AS n MATCH (a:PaiPredAlias {predicate: n}) DELETE a"
_ADD_PRED_ALIASES = (
    "UNWIND $rows AS r MERGE (a:PaiPredAlias {alias: r.alias}) SET a.predicate = r.predicate"
)

# ----------------------------------------------------------------------------- facts
_FACT = (
    " RETURN f.id AS id, f.subject_id AS subject_id, f.predicate AS predicate, "
    "f.object_id AS object_id, f.value AS value, f.valid_from AS valid_from, "
    "f.valid_to AS valid_to, f.recorded_at AS recorded_at, f.retracted_at AS retracted_at, "
    "f.source AS source, f.confidence AS confidence, f.note AS note, "
    "f.superseded_by AS superseded_by"
)
_FACT_FIELDS = (
    "id",
    "subject_id",
    "predicate",
    "object_id",
    "value",
    "valid_from",
    "valid_to",
    "recorded_at",
    "retracted_at",
    "source",
    "confidence",
    "note",
    "superseded_by",
)
_FACTS_MATCH = "MATCH (f:PaiFact)"
_FACTS_ORDER = " ORDER BY valid_from, recorded_at, id SKIP $offset LIMIT $limit"
# WHERE fragments of facts(), joined with AND: each names only its own $parameters.
_FACT_FILTERS: dict[str, str] = {
    "subject_id": "f.subject_id = $subject_id",
    "subject_ids": "f.subject_id IN $subject_ids",
    "object_id": "f.object_id = $object_id",
    "value": "f.value = $value",
    "entity_id": "(f.subject_id = $entity_id OR f.object_id = $entity_id)",
    "predicates": "f.predicate IN $predicates",
    "known_at": "f.recorded_at <= $known_at AND (f.retracted_at IS NULL OR f.retracted_at > $known_at)",
    "current": "f.retracted_at IS NULL",
    "valid_at": "f.valid_from <= $valid_at AND (f.valid_to IS NULL OR f.valid_to > $valid_at)",
    "recorded_between": "f.recorded_at >= $recorded_from AND f.recorded_at <= $recorded_to",
}
_FACT_BY_ID = "MATCH (f:PaiFact {id: $id})" + _FACT
_FACTS_AFTER = (
    "MATCH (f:PaiFact) WHERE f.seq > $cursor" + _FACT + ", f.seq AS seq ORDER BY seq LIMIT $limit"
)
# The facts a write's rules need (see model.Probe); a null q.o or q.v compares as null, never
# true. Only the subject is in the pattern: given two properties of an UNWIND row in a pattern
# ArcadeDB uses neither index (10 s for 1,000 probes at 20k facts, 0.25 s this way). Their
# objects are read by a second query: an OPTIONAL MATCH on the object id scans every entity in
# ArcadeDB for a literal fact's null one (3 s for 1,000 probes at 90k facts, 0.26 s without).
# Neo4j plans all these forms alike.
_CURRENT_FACTS = (
    "UNWIND $probes AS q MATCH (f:PaiFact {subject_id: q.s}) WHERE f.predicate = q.p "
    "AND f.retracted_at IS NULL AND (q.any OR f.object_id = q.o OR f.value = q.v)" + _FACT
)
# Rows carry their offset in the batch as seq; the writer node (locked since the transaction
# began) hands out the cursors, so they follow commit order.
_INSERT_FACT = (
    "MATCH (m:PaiMeta {key: 'writer'}) WITH m, m.seq AS base SET m.seq = base + size($rows) "
    "WITH base UNWIND $rows AS r CREATE (f:PaiFact) SET f = r, f.seq = base + r.seq"
)
_CLOSE_FACTS = (
    "UNWIND $rows AS r MATCH (f:PaiFact {id: r.id}) "
    "SET f.valid_to = r.valid_to, f.superseded_by = r.by"
)
_RETRACT_FACT = (
    "MATCH (f:PaiFact {id: $id}) SET f.retracted_at = $at, "
    "f.note = CASE WHEN $note = '' THEN f.note ELSE $note END"
)
_COUNT_FACTS = "MATCH (f:PaiFact) RETURN count(f) AS n"
_TIMELINE = (
    "MATCH (f:PaiFact) WHERE (f.recorded_at >= $since AND f.recorded_at <= $until) "
    "OR (f.valid_from >= $since AND f.valid_from <= $until) "
    "OR (f.retracted_at >= $since AND f.retracted_at <= $until) "
    "OR (f.valid_to >= $since AND f.valid_to <= $until)"
    + _FACT
    + ", f.seq AS seq ORDER BY recorded_at, seq LIMIT $limit"
)

# ----------------------------------------------------------------------------- conflicts
_CONFLICT = (
    " RETURN c.id AS id, c.fact_id AS fact_id, c.existing_fact_id AS existing_fact_id, "
    "c.rule AS rule, c.status AS status, c.created_at AS created_at, "
    "c.resolved_at AS resolved_at, c.resolution AS resolution, c.extra AS extra"
)
_CONFLICT_BY_ID = "MATCH (c:PaiConflict {id: $id})" + _CONFLICT
_CONFLICTS_BY_STATUS = (
    "MATCH (c:PaiConflict {status: $status})"
    + _CONFLICT
    + " ORDER BY created_at SKIP $offset LIMIT $limit"
)
_CONFLICTS = "MATCH (c:PaiConflict)" + _CONFLICT + " ORDER BY created_at SKIP $offset LIMIT $limit"
_RESOLVE_CONFLICT = (
    "MATCH (c:PaiConflict {id: $id}) "
    "SET c.status = 'resolved', c.resolved_at = $at, c.resolution = $resolution"
)

# ----------------------------------------------------------------------------- whole-graph copy
_DUMP_ENTITIES = "MATCH (e:PaiEntity)" + _ENTITY + " ORDER BY id"
_DUMP_ALIASES = (
    "MATCH (a:PaiAlias) RETURN a.key AS key, a.alias AS alias, a.entity_id AS entity_id "
    "ORDER BY key"
)
_DUMP_FACTS = "MATCH (f:PaiFact)" + _FACT + ", f.seq AS seq ORDER BY seq"
_DUMP_CONFLICTS = "MATCH (c:PaiConflict)" + _CONFLICT + " ORDER BY id"
_LOAD_ALIASES = "UNWIND $rows AS r CREATE (a:PaiAlias) SET a = r"
_LOAD_FACTS = "UNWIND $rows AS r CREATE (f:PaiFact) SET f = r"
_INSERT_CONFLICTS = "UNWIND $rows AS r CREATE (c:PaiConflict) SET c = r"
_SET_SEQ = "MATCH (m:PaiMeta {key: 'writer'}) SET m.seq = $seq"
_CLEAR = (
    "MATCH (n:PaiConflict) DELETE n",
    "MATCH (n:PaiFact) DELETE n",
    "MATCH (n:PaiPredAlias) DELETE n",
    "MATCH (n:PaiPredicate) DELETE n",
    "MATCH (n:PaiAlias) DELETE n",
    "MATCH (n:PaiEntity) DELETE n",
)

_CHUNK = 1000


def _float(value: float | None) -> float | None:
    return None if value is None else float(value)


_TIMES = frozenset(
    {"created_at", "valid_from", "valid_to", "recorded_at", "retracted_at", "resolved_at"}
)


def _props(record: Entity | Fact | Conflict) -> dict[str, Any]:
    """A record's fields as node properties: times as floats (one numeric type in the range
    indexes), unset fields left out (Cypher has no null properties)."""
    out: dict[str, Any] = {}
    for f in fields(record):
        value = getattr(record, f.name)
        if value is not None:
            out[f.name] = float(value) if f.name in _TIMES or f.name == "confidence" else value
    return out


def _conflict_props(conflict: Conflict) -> dict[str, Any]:
    return {**_props(conflict), "extra": json.dumps(conflict.extra)}


def _fact(row: Any) -> Fact:
    return Fact(*(row[k] for k in _FACT_FIELDS))


def _entity(row: Any) -> Entity:
    return Entity(
        row["id"], row["name"], row["key"], row["type"], row["created_at"], row["merged_into"]
    )


def _conflict(row: Any) -> Conflict:
    return Conflict(
        id=row["id"],
        fact_id=row["fact_id"],
        existing_fact_id=row["existing_fact_id"],
        rule=row["rule"],
        status=row["status"],
        created_at=row["created_at"],
        resolved_at=row["resolved_at"],
        resolution=row["resolution"] or "",
        extra=json.loads(row["extra"] or "{}"),
    )


def redact_uri(uri: str) -> str:
    """The address without any ``user:password@`` part, for messages and logs."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return "<unparseable address>"
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _driver_module() -> Any:
    try:
        import neo4j
    except ImportError as exc:
        raise MissingDependency(
            "graph_backend 'neo4j' needs the neo4j driver, which is not installed; "
            "nothing was changed",
            extra="neo4j",
            package="pai-core",
        ) from exc
    return neo4j


class _Tx:
    """One explicit transaction; implements :class:`~pai_core.memory.graph.store.GraphTx`."""

    def __init__(self, tx: neo4j.Transaction, store: Neo4jGraphStore) -> None:
        self.tx = tx
        self.store = store

    def _run(self, query: str, params: dict[str, Any] | None = None) -> list[Any]:
        self.store.sent(query)
        errors = self.store.neo4j.exceptions
        try:
            return list(self.tx.run(query, params or {}))
        except errors.ConstraintError as exc:
            raise ConflictError(
                "the graph already holds a record with that identity; nothing was changed",
                hint="Re-read the entity or fact, then call again.",
            ) from exc
        except (errors.Neo4jError, errors.DriverError, OSError) as exc:
            raise self.store.unavailable(exc) from exc

    def _one(self, query: str, params: dict[str, Any]) -> Any:
        rows = self._run(query, params)
        return rows[0] if rows else None

    def _each(self, query: str, name: str, values: list[Any]) -> Iterator[Any]:
        """The rows of a bulk read over ``values`` (the list parameter ``name``), in chunks."""
        for i in range(0, len(values), _CHUNK):
            yield from self._run(query, {name: values[i : i + _CHUNK]})

    def _chunked(self, query: str, rows: list[dict[str, Any]], *, numbered: bool = False) -> None:
        """Run a bulk statement over ``rows`` in chunks; ``numbered`` sets each row's ``seq`` to
        its 1-based place in its chunk."""
        for i in range(0, len(rows), _CHUNK):
            chunk = rows[i : i + _CHUNK]
            if numbered:
                chunk = [{**r, "seq": n} for n, r in enumerate(chunk, 1)]
            self._run(query, {"rows": chunk})

    # entities -------------------------------------------------------------
    def entity_by_key(self, key: str) -> Entity | None:
        row = self._one(_ENTITY_BY_KEY, {"key": key})
        if row is None:
            owner = self.alias_owner(key)
            return self.entity(owner) if owner else None
        entity = _entity(row)
        return self.entity(entity.merged_into) if entity.merged_into else entity

    def entities_by_keys(self, keys: list[str]) -> dict[str, Entity]:
        unique = list(dict.fromkeys(keys))
        found = {r["key"]: _entity(r) for r in self._each(_ENTITIES_BY_KEYS, "keys", unique)}
        target = {k: e.merged_into for k, e in found.items() if e.merged_into}
        missing = [k for k in unique if k not in found]
        for row in self._each(_ALIAS_OWNERS, "keys", missing):
            target[row["key"]] = row["entity_id"]
        owners = self.entities_by_ids(list(target.values())) if target else {}
        for key, owner in target.items():
            found.pop(key, None)
            if owner in owners:
                found[key] = owners[owner]
        return found

    def entity(self, entity_id: str) -> Entity | None:
        row = self._one(_ENTITY_BY_ID, {"id": entity_id})
        return _entity(row) if row is not None else None

    def entities_by_ids(self, ids: list[str]) -> dict[str, Entity]:
        unique = list(dict.fromkeys(ids))
        return {r["id"]: _entity(r) for r in self._each(_ENTITIES_BY_IDS, "ids", unique)}

    def insert_entity(self, entity: Entity) -> None:
        self.insert_entities([entity])

    def insert_entities(self, entities: Sequence[Entity]) -> None:
        self._chunked(_INSERT_ENTITIES, [_props(e) for e in entities])

    def set_entity_type(self, entity_id: str, type_: str) -> None:
        self.set_entity_types([(entity_id, type_)])

    def set_entity_types(self, types: Sequence[tuple[str, str]]) -> None:
        self._chunked(_SET_TYPES, [{"id": i, "type": t} for i, t in types])

    def add_alias(self, key: str, alias: str, entity_id: str) -> None:
        self._run(_ADD_ALIAS, {"key": key, "alias": alias, "entity_id": entity_id})

    def alias_owner(self, key: str) -> str | None:
        row = self._one(_ALIAS_OWNER, {"key": key})
        return str(row["entity_id"]) if row is not None else None

    def aliases(self, entity_id: str) -> list[str]:
        return [r["alias"] for r in self._run(_ALIASES, {"entity_id": entity_id})]

    def mark_merged(self, source_id: str, target_id: str) -> None:
        params = {"source": source_id, "target": target_id}
        self._run(_MARK_MERGED, params)
        self._run(_MOVE_ALIASES, params)

    def repoint(self, source_id: str, target_id: str) -> int:
        params = {"source": source_id, "target": target_id}
        a = self._one(_REPOINT_SUBJECT, params)
        b = self._one(_REPOINT_OBJECT, params)
        return int((a["n"] if a else 0) + (b["n"] if b else 0))

    def entity_names(self) -> list[tuple[str, str]]:
        return [(r["id"], r["name"]) for r in self._run(_ENTITY_NAMES)]

    def count_entities(self) -> int:
        return int(self._one(_COUNT_ENTITIES, {})["n"])

    # predicates -------------------------------------------------------------
    @staticmethod
    def _predicate(row: Any) -> PredicateDef:
        return PredicateDef(
            row["name"],
            row["cardinality"],
            row["inverse"],
            row["description"] or "",
            tuple(json.loads(row["aliases"] or "[]")),
            tuple(json.loads(row["exclusive_with"] or "[]")),
            bool(row["builtin"]),
        )

    def predicate(self, name: str) -> PredicateDef | None:
        row = self._one(_PREDICATE, {"name": name})
        return self._predicate(row) if row is not None else None

    def predicate_for_alias(self, alias: str) -> str | None:
        row = self._one(_PREDICATE_FOR_ALIAS, {"alias": alias})
        return str(row["predicate"]) if row is not None else None

    def resolve_predicates(
        self, names: list[str]
    ) -> dict[str, tuple[str | None, PredicateDef | None]]:
        rows = self._run(_RESOLVE_PREDICATES, {"names": list(dict.fromkeys(names))})
        return {
            r["asked"]: (r["alias_of"], self._predicate(r) if r["name"] is not None else None)
            for r in rows
        }

    def upsert_predicate(self, pred: PredicateDef) -> None:
        self.upsert_predicates([pred])

    def upsert_predicates(self, preds: Sequence[PredicateDef]) -> None:
        rows = [
            {
                "name": p.name,
                "props": {
                    "cardinality": p.cardinality,
                    "inverse": p.inverse,  # None removes a previous inverse
                    "description": p.description,
                    "aliases": json.dumps(list(p.aliases)),
                    "exclusive_with": json.dumps(list(p.exclusive_with)),
                    "builtin": bool(p.builtin),
                },
            }
            for p in preds
        ]
        self._run(_UPSERT_PREDICATES, {"rows": rows})
        self._run(_DROP_PRED_ALIASES, {"names": [p.name for p in preds]})
        aliases = [{"alias": a, "predicate": p.name} for p in preds for a in p.aliases]
        if aliases:
            self._run(_ADD_PRED_ALIASES, {"rows": aliases})

    def predicates(self) -> list[PredicateDef]:
        return [self._predicate(r) for r in self._run(_PREDICATES)]

    # facts ------------------------------------------------------------------
    def facts(
        self,
        *,
        subject_id: str | None = None,
        predicates: list[str] | None = None,
        object_id: str | None = None,
        value: str | None = None,
        entity_id: str | None = None,
        subject_ids: list[str] | None = None,
        include_retracted: bool = False,
        valid_at: float | None = None,
        known_at: float | None = None,
        recorded_between: tuple[float, float] | None = None,
        limit: int = 1000,
        offset: int = 0,
    ) -> list[Fact]:
        params: dict[str, Any] = {"limit": int(limit), "offset": int(offset)}
        given = {
            "subject_id": subject_id,
            "subject_ids": subject_ids,
            "object_id": object_id,
            "value": value,
            "entity_id": entity_id,
            "predicates": predicates or None,
            "known_at": _float(known_at),
            "valid_at": _float(valid_at),
        }
        used = [name for name, v in given.items() if v is not None]
        params.update((name, given[name]) for name in used)
        if known_at is None and not include_retracted:
            used.append("current")
        if recorded_between is not None:
            used.append("recorded_between")
            params["recorded_from"] = float(recorded_between[0])
            params["recorded_to"] = float(recorded_between[1])
        query = _FACTS_MATCH
        if used:
            query += " WHERE " + " AND ".join(_FACT_FILTERS[name] for name in used)
        return [_fact(r) for r in self._run(query + _FACT + _FACTS_ORDER, params)]

    def facts_after(self, cursor: int, limit: int) -> list[tuple[int, Fact]]:
        rows = self._run(_FACTS_AFTER, {"cursor": int(cursor), "limit": int(limit)})
        return [(int(r["seq"]), _fact(r)) for r in rows]

    def fact(self, fact_id: str) -> Fact | None:
        row = self._one(_FACT_BY_ID, {"id": fact_id})
        return _fact(row) if row is not None else None

    def current_facts(self, probes: Sequence[Probe]) -> tuple[list[Fact], dict[str, Entity]]:
        rows = [
            {
                "s": p.subject_id,
                "p": p.predicate,
                "any": p.any_object,
                "o": p.object_id,
                "v": p.value,
            }
            for p in probes
        ]
        facts = {r["id"]: _fact(r) for r in self._each(_CURRENT_FACTS, "probes", rows)}
        objects = self.entities_by_ids([f.object_id for f in facts.values() if f.object_id])
        return list(facts.values()), objects

    def insert_fact(self, fact: Fact) -> None:
        self.insert_facts([fact])

    def insert_facts(self, facts: Sequence[Fact]) -> None:
        self._chunked(_INSERT_FACT, [_props(f) for f in facts], numbered=True)

    def close_fact(self, fact_id: str, valid_to: float, superseded_by: str | None) -> None:
        self.close_facts([(fact_id, valid_to, superseded_by)])

    def close_facts(self, closes: Sequence[tuple[str, float, str | None]]) -> None:
        rows = [{"id": i, "valid_to": float(t), "by": by} for i, t, by in closes]
        self._chunked(_CLOSE_FACTS, rows)

    def retract_fact(self, fact_id: str, at: float, note: str) -> None:
        self._run(_RETRACT_FACT, {"id": fact_id, "at": float(at), "note": note})

    def count_facts(self) -> int:
        return int(self._one(_COUNT_FACTS, {})["n"])

    def timeline(self, since: float, until: float, limit: int) -> list[Fact]:
        params = {"since": float(since), "until": float(until), "limit": int(limit)}
        return [_fact(r) for r in self._run(_TIMELINE, params)]

    # whole-graph copy (pai_core.memory.graph.migrate) ---------------------------
    def dump(self) -> GraphDump:
        from pai_core.memory.graph.migrate import GraphDump

        return GraphDump(
            entities=[_entity(r) for r in self._run(_DUMP_ENTITIES)],
            aliases=[(r["key"], r["alias"], r["entity_id"]) for r in self._run(_DUMP_ALIASES)],
            predicates=self.predicates(),
            facts=[_fact(r) for r in self._run(_DUMP_FACTS)],
            conflicts=[_conflict(r) for r in self._run(_DUMP_CONFLICTS)],
        )

    def load(self, dump: GraphDump) -> None:
        """Write a whole graph into this (empty) one in batches; facts keep their order."""
        self.upsert_predicates(dump.predicates)
        keys = ("key", "alias", "entity_id")
        batches = (
            (_INSERT_ENTITIES, [_props(e) for e in dump.entities]),
            (_LOAD_ALIASES, [dict(zip(keys, a, strict=True)) for a in dump.aliases]),
            (_LOAD_FACTS, [{**_props(f), "seq": i} for i, f in enumerate(dump.facts, 1)]),
            (_INSERT_CONFLICTS, [_conflict_props(c) for c in dump.conflicts]),
        )
        for query, rows in batches:
            for i in range(0, len(rows), _CHUNK):
                self._run(query, {"rows": rows[i : i + _CHUNK]})
        self._run(_SET_SEQ, {"seq": len(dump.facts)})

    def clear(self) -> None:
        """Delete every record of the graph (a migration replacing it, in its transaction)."""
        for query in _CLEAR:
            self._run(query)
        self._run(_SET_SEQ, {"seq": 0})

    # conflicts --------------------------------------------------------------
    def insert_conflict(self, conflict: Conflict) -> None:
        self.insert_conflicts([conflict])

    def insert_conflicts(self, conflicts: Sequence[Conflict]) -> None:
        self._chunked(_INSERT_CONFLICTS, [_conflict_props(c) for c in conflicts])

    def conflict(self, conflict_id: str) -> Conflict | None:
        row = self._one(_CONFLICT_BY_ID, {"id": conflict_id})
        return _conflict(row) if row is not None else None

    def conflicts(self, status: str | None, limit: int, offset: int) -> list[Conflict]:
        params: dict[str, Any] = {"limit": int(limit), "offset": int(offset)}
        if status:
            rows = self._run(_CONFLICTS_BY_STATUS, {**params, "status": status})
        else:
            rows = self._run(_CONFLICTS, params)
        return [_conflict(r) for r in rows]

    def resolve_conflict(self, conflict_id: str, at: float, resolution: str) -> None:
        self._run(_RESOLVE_CONFLICT, {"id": conflict_id, "at": float(at), "resolution": resolution})


class Neo4jGraphStore:
    """The graph on a Bolt server; implements :class:`~pai_core.memory.graph.store.GraphStore`.

    Connects and creates the constraints and indexes (idempotently) on construction, so a wrong
    address fails at start-up with one line naming the backend, the address and the setting.
    """

    def __init__(
        self,
        uri: str,
        *,
        user: str = "neo4j",
        password: str | None = None,
        database: str | None = None,
        pool_size: int = 50,
        timeout: float = 15.0,
        retry_s: float = 10.0,
    ) -> None:
        self.neo4j = _driver_module()
        self.uri = uri
        self.address = redact_uri(uri)
        self.user = user
        self.database = database
        self.retry_s = retry_s
        self.queries_sent: list[str] | None = None  # set to a list to record query texts
        self.commit_hooks: list[CommitHook] = []  # told about every write transaction
        # Every session of this store shares one bookmark manager, so each transaction starts
        # after every one this store committed before it (read your own writes): without it a
        # read session may be served a state older than the last commit (a cluster follower;
        # ArcadeDB under load showed a copy missing its last fact right after loading it).
        self.bookmarks = self.neo4j.GraphDatabase.bookmark_manager()
        try:
            self.driver = self.neo4j.GraphDatabase.driver(
                uri,
                auth=(user, password or ""),
                max_connection_pool_size=pool_size,
                connection_timeout=timeout,
                connection_acquisition_timeout=timeout,
            )
        except (self.neo4j.exceptions.ConfigurationError, ValueError) as exc:
            detail = str(exc).replace(uri, self.address)  # the driver quotes the raw URI
            raise BackendUnavailable(
                f"graph backend neo4j: address {self.address!r} is not a Bolt URI "
                f"(setting PAI_MEMORY_NEO4J_URI): {detail}; nothing was changed",
                hint="Use bolt://, bolt+s://, neo4j:// or neo4j+s:// followed by host:port.",
            ) from exc
        try:
            self._ensure_schema()
        except BaseException:
            self.driver.close()
            raise

    @classmethod
    def from_settings(cls, settings: MemorySettings) -> Neo4jGraphStore:
        password = settings.neo4j_password
        return cls(
            settings.neo4j_uri,
            user=settings.neo4j_user,
            password=password.get_secret_value() if password is not None else None,
            database=settings.neo4j_database,
            pool_size=settings.neo4j_pool_size,
            timeout=settings.neo4j_timeout,
        )

    def describe(self) -> str:
        return f"neo4j:{self.address}/{self.database or '(default database)'}"

    def sent(self, query: str) -> None:
        if self.queries_sent is not None:
            self.queries_sent.append(query)

    def unavailable(self, exc: BaseException) -> BackendUnavailable:
        """One line naming the backend, the address and the setting to check."""
        errors = self.neo4j.exceptions
        if isinstance(exc, errors.AuthError):
            return BackendUnavailable(
                f"graph backend neo4j at {self.address} refused user {self.user!r} "
                "(settings PAI_MEMORY_NEO4J_USER, PAI_MEMORY_NEO4J_PASSWORD); nothing was changed",
                hint="Set the user and password of the graph server, then restart.",
            )
        text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        detail = str(text).splitlines()[0][:200]
        return BackendUnavailable(
            f"graph backend neo4j at {self.address} (setting PAI_MEMORY_NEO4J_URI, database "
            f"{self.database or 'default'}) failed: {detail}; the transaction was rolled back, "
            "nothing was changed",
        )

    def _retryable(self, exc: BaseException) -> bool:
        errors = self.neo4j.exceptions
        if isinstance(exc, (errors.TransientError, errors.ServiceUnavailable)):
            return True
        if isinstance(exc, errors.SessionExpired):
            return True
        is_retryable = getattr(exc, "is_retryable", None)
        return bool(is_retryable()) if callable(is_retryable) else False

    def _ensure_schema(self) -> None:
        with self._session(write=True) as session:
            for query in SCHEMA:
                self.sent(query)
                try:
                    session.run(query).consume()
                except (self.neo4j.exceptions.Neo4jError, self.neo4j.exceptions.DriverError) as e:
                    raise self.unavailable(e) from e
                except OSError as exc:
                    raise self.unavailable(exc) from exc
        with self._transaction(write=True):
            pass  # creates the writer node once, under its unique constraint

    @contextmanager
    def _session(self, *, write: bool) -> Iterator[neo4j.Session]:
        mode = self.neo4j.WRITE_ACCESS if write else self.neo4j.READ_ACCESS
        kwargs: dict[str, Any] = {"default_access_mode": mode, "bookmark_manager": self.bookmarks}
        if self.database:
            kwargs["database"] = self.database
        session = self.driver.session(**kwargs)
        try:
            yield session
        finally:
            try:
                session.close()
            except (self.neo4j.exceptions.DriverError, OSError) as exc:
                log.warning("graph backend neo4j: closing a session failed: %s", exc)

    def _begin(self, session: neo4j.Session, *, write: bool) -> neo4j.Transaction:
        """A started transaction (holding the writer lock when ``write``), retried on
        transient errors with exponential backoff for up to ``retry_s``."""
        deadline = time.monotonic() + self.retry_s
        delay = 0.05
        while True:
            tx = None
            try:
                tx = session.begin_transaction()
                if write:
                    self.sent(_WRITER)
                    tx.run(_WRITER).consume()
                return tx
            except (self.neo4j.exceptions.Neo4jError, self.neo4j.exceptions.DriverError) as exc:
                if tx is not None:
                    self._rollback(tx)
                if not self._retryable(exc) or time.monotonic() + delay > deadline:
                    raise self.unavailable(exc) from exc
                log.info("graph backend neo4j: retrying a transient error: %s", exc)
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
            except OSError as exc:
                raise self.unavailable(exc) from exc

    def _rollback(self, tx: neo4j.Transaction) -> None:
        try:
            if not tx.closed():
                tx.rollback()
        except (self.neo4j.exceptions.Neo4jError, self.neo4j.exceptions.DriverError, OSError):
            log.warning("graph backend neo4j: rollback failed; the server discards the transaction")

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[_Tx]:
        with self._session(write=write) as session:
            tx = self._begin(session, write=write)
            try:
                yield _Tx(tx, self)
                if write:
                    for hook in self.commit_hooks:
                        hook.before_commit()  # raising rolls the write back
            except BaseException:
                self._rollback(tx)
                raise
            try:
                tx.commit()
            except (self.neo4j.exceptions.Neo4jError, self.neo4j.exceptions.DriverError) as exc:
                self._rollback(tx)
                if isinstance(exc, self.neo4j.exceptions.TransientError):
                    # Neo4j serialises writers on the writer node's lock; servers with
                    # optimistic concurrency (ArcadeDB) refuse the later of two commits here.
                    raise ConflictError(
                        f"graph backend neo4j at {self.address}: a concurrent write committed "
                        "first; this transaction was rolled back, nothing was changed",
                        hint="Call again: the graph is re-read before the write is decided.",
                    ) from exc
                raise self.unavailable(exc) from exc
            if write:
                for hook in self.commit_hooks:
                    hook.after_commit()

    def read(self) -> AbstractContextManager[_Tx]:
        return self._transaction(write=False)

    def write(self) -> AbstractContextManager[_Tx]:
        return self._transaction(write=True)

    def close(self) -> None:
        self.driver.close()
