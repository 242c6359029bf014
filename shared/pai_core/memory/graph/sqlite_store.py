"""The embedded graph store: tables ``g_*`` in the memory's SQLite file.

Connections and transactions come from :mod:`pai_core.memory.db` (WAL, ``BEGIN IMMEDIATE`` with
busy retry, all-or-nothing), shared with the other layers that keep their tables in the same
file. This module holds only the graph's schema and its queries (:class:`_Tx` implements
:class:`~pai_core.memory.graph.store.GraphTx`).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any

from pai_core.memory.db import Database
from pai_core.memory.graph.model import Conflict, Entity, Fact, PredicateDef, Probe

__all__ = ["SqliteGraphStore"]

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS g_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS g_entities (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, key TEXT NOT NULL UNIQUE, type TEXT NOT NULL,
    created_at REAL NOT NULL, merged_into TEXT);
CREATE TABLE IF NOT EXISTS g_aliases (
    key TEXT PRIMARY KEY, alias TEXT NOT NULL, entity_id TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS g_aliases_entity ON g_aliases(entity_id);
CREATE TABLE IF NOT EXISTS g_predicates (
    name TEXT PRIMARY KEY, cardinality TEXT NOT NULL, inverse TEXT, description TEXT NOT NULL,
    aliases TEXT NOT NULL, exclusive_with TEXT NOT NULL, builtin INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS g_predicate_aliases (alias TEXT PRIMARY KEY, predicate TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS g_facts (
    id TEXT PRIMARY KEY, subject_id TEXT NOT NULL, predicate TEXT NOT NULL, object_id TEXT,
    value TEXT, valid_from REAL NOT NULL, valid_to REAL, recorded_at REAL NOT NULL,
    retracted_at REAL, source TEXT NOT NULL, confidence REAL NOT NULL, note TEXT NOT NULL,
    superseded_by TEXT);
CREATE INDEX IF NOT EXISTS g_facts_subject ON g_facts(subject_id, predicate);
CREATE INDEX IF NOT EXISTS g_facts_object ON g_facts(object_id, predicate);
CREATE INDEX IF NOT EXISTS g_facts_recorded ON g_facts(recorded_at);
CREATE INDEX IF NOT EXISTS g_facts_valid_from ON g_facts(valid_from);
CREATE INDEX IF NOT EXISTS g_facts_predicate ON g_facts(predicate);
CREATE TABLE IF NOT EXISTS g_conflicts (
    id TEXT PRIMARY KEY, fact_id TEXT NOT NULL, existing_fact_id TEXT NOT NULL, rule TEXT NOT NULL,
    status TEXT NOT NULL, created_at REAL NOT NULL, resolved_at REAL, resolution TEXT NOT NULL,
    extra TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS g_conflicts_status ON g_conflicts(status, created_at);
"""

_TABLES = (
    "g_entities",
    "g_aliases",
    "g_predicates",
    "g_predicate_aliases",
    "g_facts",
    "g_conflicts",
)
_FACT_COLS = (
    "id, subject_id, predicate, object_id, value, valid_from, valid_to, recorded_at, "
    "retracted_at, source, confidence, note, superseded_by"
)


_FACT_FIELDS = tuple(f.name for f in fields(Fact))
assert ", ".join(_FACT_FIELDS) == _FACT_COLS


def _fact(row: tuple[Any, ...]) -> Fact:
    return Fact(*row)


def _fact_row(fact: Fact) -> tuple[Any, ...]:
    return tuple(getattr(fact, name) for name in _FACT_FIELDS)


class _Tx:
    """A transaction on one connection; implements :class:`~pai_core.memory.graph.store.GraphTx`."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.c = conn

    # entities -------------------------------------------------------------
    def entity_by_key(self, key: str) -> Entity | None:
        row = self.c.execute(
            "SELECT id, name, key, type, created_at, merged_into FROM g_entities WHERE key=?",
            (key,),
        ).fetchone()
        if row is None:
            owner = self.alias_owner(key)
            return self.entity(owner) if owner else None
        entity = Entity(*row)
        return self.entity(entity.merged_into) if entity.merged_into else entity

    def entity(self, entity_id: str) -> Entity | None:
        row = self.c.execute(
            "SELECT id, name, key, type, created_at, merged_into FROM g_entities WHERE id=?",
            (entity_id,),
        ).fetchone()
        return Entity(*row) if row else None

    def entities_by_ids(self, ids: list[str]) -> dict[str, Entity]:
        out: dict[str, Entity] = {}
        unique = list(dict.fromkeys(ids))
        for i in range(0, len(unique), 500):
            chunk = unique[i : i + 500]
            marks = ",".join("?" * len(chunk))
            for row in self.c.execute(
                f"SELECT id, name, key, type, created_at, merged_into FROM g_entities "
                f"WHERE id IN ({marks})",
                chunk,
            ):
                out[row[0]] = Entity(*row)
        return out

    def entities_by_keys(self, keys: list[str]) -> dict[str, Entity]:
        return {k: e for k in dict.fromkeys(keys) if (e := self.entity_by_key(k)) is not None}

    def insert_entity(self, entity: Entity) -> None:
        self.insert_entities([entity])

    def insert_entities(self, entities: Sequence[Entity]) -> None:
        self.c.executemany(
            "INSERT INTO g_entities (id, name, key, type, created_at, merged_into) "
            "VALUES (?,?,?,?,?,?)",
            [(e.id, e.name, e.key, e.type, e.created_at, e.merged_into) for e in entities],
        )

    def set_entity_type(self, entity_id: str, type_: str) -> None:
        self.set_entity_types([(entity_id, type_)])

    def set_entity_types(self, types: Sequence[tuple[str, str]]) -> None:
        self.c.executemany("UPDATE g_entities SET type=? WHERE id=?", [(t, i) for i, t in types])

    def add_alias(self, key: str, alias: str, entity_id: str) -> None:
        self.c.execute(
            "INSERT OR REPLACE INTO g_aliases (key, alias, entity_id) VALUES (?,?,?)",
            (key, alias, entity_id),
        )

    def alias_owner(self, key: str) -> str | None:
        row = self.c.execute("SELECT entity_id FROM g_aliases WHERE key=?", (key,)).fetchone()
        return str(row[0]) if row else None

    def aliases(self, entity_id: str) -> list[str]:
        rows = self.c.execute(
            "SELECT alias FROM g_aliases WHERE entity_id=? ORDER BY alias", (entity_id,)
        )
        return [r[0] for r in rows]

    def mark_merged(self, source_id: str, target_id: str) -> None:
        self.c.execute("UPDATE g_entities SET merged_into=? WHERE id=?", (target_id, source_id))
        self.c.execute("UPDATE g_aliases SET entity_id=? WHERE entity_id=?", (target_id, source_id))

    def repoint(self, source_id: str, target_id: str) -> int:
        a = self.c.execute(
            "UPDATE g_facts SET subject_id=? WHERE subject_id=?", (target_id, source_id)
        ).rowcount
        b = self.c.execute(
            "UPDATE g_facts SET object_id=? WHERE object_id=?", (target_id, source_id)
        ).rowcount
        return int(a + b)

    def entity_names(self) -> list[tuple[str, str]]:
        rows = self.c.execute("SELECT id, name FROM g_entities WHERE merged_into IS NULL")
        return [(r[0], r[1]) for r in rows]

    def count_entities(self) -> int:
        return int(
            self.c.execute("SELECT count(*) FROM g_entities WHERE merged_into IS NULL").fetchone()[
                0
            ]
        )

    # predicates -------------------------------------------------------------
    def predicate(self, name: str) -> PredicateDef | None:
        row = self.c.execute(
            "SELECT name, cardinality, inverse, description, aliases, exclusive_with, builtin "
            "FROM g_predicates WHERE name=?",
            (name,),
        ).fetchone()
        if row is None:
            return None
        return PredicateDef(
            row[0],
            row[1],
            row[2],
            row[3],
            tuple(json.loads(row[4])),
            tuple(json.loads(row[5])),
            bool(row[6]),
        )

    def predicate_for_alias(self, alias: str) -> str | None:
        row = self.c.execute(
            "SELECT predicate FROM g_predicate_aliases WHERE alias=?", (alias,)
        ).fetchone()
        return str(row[0]) if row else None

    def upsert_predicates(self, preds: Sequence[PredicateDef]) -> None:
        for pred in preds:
            self.upsert_predicate(pred)

    def upsert_predicate(self, pred: PredicateDef) -> None:
        self.c.execute(
            "INSERT OR REPLACE INTO g_predicates VALUES (?,?,?,?,?,?,?)",
            (
                pred.name,
                pred.cardinality,
                pred.inverse,
                pred.description,
                json.dumps(list(pred.aliases)),
                json.dumps(list(pred.exclusive_with)),
                int(pred.builtin),
            ),
        )
        self.c.execute("DELETE FROM g_predicate_aliases WHERE predicate=?", (pred.name,))
        for alias in pred.aliases:
            self.c.execute(
                "INSERT OR REPLACE INTO g_predicate_aliases VALUES (?,?)", (alias, pred.name)
            )

    def predicates(self) -> list[PredicateDef]:
        names = [r[0] for r in self.c.execute("SELECT name FROM g_predicates ORDER BY name")]
        return [p for n in names if (p := self.predicate(n)) is not None]

    def resolve_predicates(
        self, names: list[str]
    ) -> dict[str, tuple[str | None, PredicateDef | None]]:
        out: dict[str, tuple[str | None, PredicateDef | None]] = {}
        for name in dict.fromkeys(names):
            alias_of = self.predicate_for_alias(name)
            out[name] = (alias_of, self.predicate(alias_of or name))
        return out

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
        where: list[str] = []
        args: list[Any] = []
        if subject_id is not None:
            where.append("subject_id=?")
            args.append(subject_id)
        if subject_ids is not None:
            where.append(f"subject_id IN ({','.join('?' * len(subject_ids)) or 'NULL'})")
            args += subject_ids
        if object_id is not None:
            where.append("object_id=?")
            args.append(object_id)
        if value is not None:
            where.append("value=?")
            args.append(value)
        if entity_id is not None:
            where.append("(subject_id=? OR object_id=?)")
            args += [entity_id, entity_id]
        if predicates:
            where.append(f"predicate IN ({','.join('?' * len(predicates))})")
            args += predicates
        if known_at is not None:
            where.append("recorded_at<=? AND (retracted_at IS NULL OR retracted_at>?)")
            args += [known_at, known_at]
        elif not include_retracted:
            where.append("retracted_at IS NULL")
        if valid_at is not None:
            where.append("valid_from<=? AND (valid_to IS NULL OR valid_to>?)")
            args += [valid_at, valid_at]
        if recorded_between is not None:
            where.append("recorded_at BETWEEN ? AND ?")
            args += list(recorded_between)
        sql = f"SELECT {_FACT_COLS} FROM g_facts"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY valid_from, recorded_at, id LIMIT ? OFFSET ?"
        return [_fact(r) for r in self.c.execute(sql, [*args, limit, offset])]

    def facts_after(self, cursor: int, limit: int) -> list[tuple[int, Fact]]:
        rows = self.c.execute(
            f"SELECT rowid, {_FACT_COLS} FROM g_facts WHERE rowid > ? ORDER BY rowid LIMIT ?",
            (cursor, limit),
        ).fetchall()
        return [(int(r[0]), _fact(r[1:])) for r in rows]

    def current_facts(self, probes: Sequence[Probe]) -> tuple[list[Fact], dict[str, Entity]]:
        found: dict[str, Fact] = {}
        for p in probes:
            sql = f"SELECT {_FACT_COLS} FROM g_facts WHERE subject_id=? AND predicate=? "
            sql += "AND retracted_at IS NULL"
            args: list[Any] = [p.subject_id, p.predicate]
            if not p.any_object:
                sql += " AND (object_id=? OR value=?)"
                args += [p.object_id, p.value]
            found.update((f.id, f) for f in map(_fact, self.c.execute(sql, args)))
        objects = self.entities_by_ids([f.object_id for f in found.values() if f.object_id])
        return list(found.values()), objects

    def fact(self, fact_id: str) -> Fact | None:
        row = self.c.execute(f"SELECT {_FACT_COLS} FROM g_facts WHERE id=?", (fact_id,)).fetchone()
        return _fact(row) if row else None

    def insert_fact(self, fact: Fact) -> None:
        self.insert_facts([fact])

    def insert_facts(self, facts: Sequence[Fact]) -> None:
        self.c.executemany(
            f"INSERT INTO g_facts ({_FACT_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [_fact_row(f) for f in facts],
        )

    def close_fact(self, fact_id: str, valid_to: float, superseded_by: str | None) -> None:
        self.close_facts([(fact_id, valid_to, superseded_by)])

    def close_facts(self, closes: Sequence[tuple[str, float, str | None]]) -> None:
        self.c.executemany(
            "UPDATE g_facts SET valid_to=?, superseded_by=? WHERE id=?",
            [(valid_to, by, fact_id) for fact_id, valid_to, by in closes],
        )

    def retract_fact(self, fact_id: str, at: float, note: str) -> None:
        self.c.execute(
            "UPDATE g_facts SET retracted_at=?, note=CASE WHEN ?='' THEN note ELSE ? END "
            "WHERE id=?",
            (at, note, note, fact_id),
        )

    def count_facts(self) -> int:
        return int(self.c.execute("SELECT count(*) FROM g_facts").fetchone()[0])

    def timeline(self, since: float, until: float, limit: int) -> list[Fact]:
        rows = self.c.execute(
            f"SELECT {_FACT_COLS} FROM g_facts WHERE (recorded_at BETWEEN ?1 AND ?2) "
            "OR (valid_from BETWEEN ?1 AND ?2) OR (retracted_at BETWEEN ?1 AND ?2) "
            "OR (valid_to BETWEEN ?1 AND ?2) ORDER BY recorded_at LIMIT ?3",
            (since, until, limit),
        )
        return [_fact(r) for r in rows]

    def clear(self) -> None:
        """Delete every record of the graph (a migration replacing it, in its transaction)."""
        for table in _TABLES:
            self.c.execute(f"DELETE FROM {table}")

    # conflicts --------------------------------------------------------------
    def insert_conflict(self, conflict: Conflict) -> None:
        self.insert_conflicts([conflict])

    def insert_conflicts(self, conflicts: Sequence[Conflict]) -> None:
        self.c.executemany(
            "INSERT INTO g_conflicts VALUES (?,?,?,?,?,?,?,?,?)",
            [
                (
                    c.id,
                    c.fact_id,
                    c.existing_fact_id,
                    c.rule,
                    c.status,
                    c.created_at,
                    c.resolved_at,
                    c.resolution,
                    json.dumps(c.extra),
                )
                for c in conflicts
            ],
        )

    def conflict(self, conflict_id: str) -> Conflict | None:
        row = self.c.execute("SELECT * FROM g_conflicts WHERE id=?", (conflict_id,)).fetchone()
        return self._conflict(row) if row else None

    @staticmethod
    def _conflict(row: tuple[Any, ...]) -> Conflict:
        return Conflict(
            id=row[0],
            fact_id=row[1],
            existing_fact_id=row[2],
            rule=row[3],
            status=row[4],
            created_at=row[5],
            resolved_at=row[6],
            resolution=row[7],
            extra=json.loads(row[8]),
        )

    def conflicts(self, status: str | None, limit: int, offset: int) -> list[Conflict]:
        if status:
            rows = self.c.execute(
                "SELECT * FROM g_conflicts WHERE status=? ORDER BY created_at LIMIT ? OFFSET ?",
                (status, limit, offset),
            )
        else:
            rows = self.c.execute(
                "SELECT * FROM g_conflicts ORDER BY created_at LIMIT ? OFFSET ?", (limit, offset)
            )
        return [self._conflict(r) for r in rows]

    def resolve_conflict(self, conflict_id: str, at: float, resolution: str) -> None:
        self.c.execute(
            "UPDATE g_conflicts SET status='resolved', resolved_at=?, resolution=? WHERE id=?",
            (at, resolution, conflict_id),
        )


class SqliteGraphStore:
    """The default store over a :class:`~pai_core.memory.db.Database` (or a file path)."""

    def __init__(self, db: Database | Path) -> None:
        self.db = db if isinstance(db, Database) else Database(db)
        self.path = self.db.path
        self.db.ensure_schema(
            "graph",
            [
                *_SCHEMA.split(";"),
                f"INSERT OR REPLACE INTO g_meta VALUES ('schema', '{SCHEMA_VERSION}')",
            ],
            check=f"SELECT 1 FROM g_meta WHERE key='schema' AND value='{SCHEMA_VERSION}'",
        )

    def describe(self) -> str:
        return self.db.describe()

    @contextmanager
    def read(self) -> Iterator[_Tx]:
        with self.db.read() as conn:
            yield _Tx(conn)

    @contextmanager
    def write(self) -> Iterator[_Tx]:
        with self.db.write() as conn:
            yield _Tx(conn)

    def close(self) -> None:
        self.db.close()
