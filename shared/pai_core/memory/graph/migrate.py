"""Move a whole fact graph between backends (SQLite ⇄ Neo4j) without loss, verified.

Every record is copied: entities (merged ones too, so old names still resolve), aliases,
predicates, facts in their commit order (so incremental indexers keep a consistent cursor) and
conflicts. The copy is verified by counts and a SHA-256 checksum of every record on both
sides; the target must be empty (or be emptied first, in the same transaction). Only the graph moves: full text, episodes and vectors stay in
the memory's SQLite file (search's Qdrant collection is rebuilt from it), notes in the vault.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import astuple, dataclass, field
from typing import Any

from pai_core.errors import Conflict as ConflictError
from pai_core.errors import VerificationFailed
from pai_core.memory.graph.model import Conflict, Entity, Fact, PredicateDef
from pai_core.memory.graph.store import GraphStore

__all__ = ["GraphDump", "MigrationReport", "dump_graph", "migrate_graph"]


@dataclass
class GraphDump:
    entities: list[Entity] = field(default_factory=list)
    aliases: list[tuple[str, str, str]] = field(default_factory=list)
    predicates: list[PredicateDef] = field(default_factory=list)
    facts: list[Fact] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "entities": len(self.entities),
            "aliases": len(self.aliases),
            "predicates": len(self.predicates),
            "facts": len(self.facts),
            "conflicts": len(self.conflicts),
        }

    def checksums(self) -> dict[str, str]:
        """One SHA-256 per kind over its records in a canonical order (times as floats)."""

        def row(record: Any) -> list[Any]:
            values = astuple(record) if not isinstance(record, tuple) else record
            return [
                float(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in values
            ]

        out: dict[str, str] = {}
        for kind in ("entities", "aliases", "predicates", "facts", "conflicts"):
            rows = sorted(
                json.dumps(row(r), sort_keys=True, default=list) for r in getattr(self, kind)
            )
            out[kind] = hashlib.sha256("\n".join(rows).encode()).hexdigest()
        return out


@dataclass
class MigrationReport:
    source: str
    target: str
    counts: dict[str, int]
    checksums: dict[str, str]


def _sqlite_dump(store: Any) -> GraphDump:
    facts = [f for _, f in _all_facts(store)]
    with store.db.read() as c:
        predicates = [
            PredicateDef(
                r[0], r[1], r[2], r[3], tuple(json.loads(r[4])), tuple(json.loads(r[5])), bool(r[6])
            )
            for r in c.execute("SELECT * FROM g_predicates ORDER BY name")
        ]
        return GraphDump(
            entities=[
                Entity(*r)
                for r in c.execute(
                    "SELECT id, name, key, type, created_at, merged_into FROM g_entities ORDER BY id"
                )
            ],
            aliases=[
                (r[0], r[1], r[2])
                for r in c.execute("SELECT key, alias, entity_id FROM g_aliases ORDER BY key")
            ],
            predicates=predicates,
            facts=facts,
            conflicts=store_conflicts(c),
        )


def store_conflicts(conn: Any) -> list[Conflict]:
    from pai_core.memory.graph.sqlite_store import _Tx

    return [_Tx._conflict(r) for r in conn.execute("SELECT * FROM g_conflicts ORDER BY id")]


def _all_facts(store: GraphStore) -> list[tuple[int, Fact]]:
    out: list[tuple[int, Fact]] = []
    cursor = 0
    with store.read() as tx:
        while rows := tx.facts_after(cursor, 5000):
            out += rows
            cursor = rows[-1][0]
    return out


def dump_graph(store: GraphStore) -> GraphDump:
    """Every record of a SQLite or Neo4j graph store."""
    if hasattr(store, "db"):  # the embedded store: its tables
        return _sqlite_dump(store)
    with store.read() as tx:
        return tx.dump()  # type: ignore[attr-defined, no-any-return]


def _load(store: GraphStore, dump: GraphDump, replace: bool) -> None:
    with store.write() as tx:
        if tx.count_entities() or tx.count_facts() or tx.predicates():
            if not replace:
                raise ConflictError(
                    f"the target graph {store.describe()} is not empty; nothing was changed",
                    hint="Migrate into an empty database (or a new SQLite file), or pass "
                    "--overwrite to replace what it holds.",
                )
            tx.clear()  # type: ignore[attr-defined]  # in this transaction: all or nothing
        if hasattr(tx, "load"):
            tx.load(dump)
            return
        tx.upsert_predicates(dump.predicates)
        tx.insert_entities(dump.entities)
        for key, alias, entity_id in dump.aliases:
            tx.add_alias(key, alias, entity_id)
        tx.insert_facts(dump.facts)  # in order: the target's cursors follow the source's
        tx.insert_conflicts(dump.conflicts)


def migrate_graph(
    source: GraphStore, target: GraphStore, *, replace: bool = False
) -> MigrationReport:
    """Copy ``source`` into the empty ``target`` in one write transaction, then verify that
    the target holds exactly the source's records (counts and checksums). ``replace`` empties
    a non-empty target first, in the same transaction."""
    dump = dump_graph(source)
    _load(target, dump, replace)
    copied = dump_graph(target)
    if copied.counts() != dump.counts() or copied.checksums() != dump.checksums():
        raise VerificationFailed(
            f"the copy in {target.describe()} differs from {source.describe()}: "
            f"{copied.counts()} vs {dump.counts()}",
            hint="Empty the target and migrate again; the source was not changed.",
        )
    return MigrationReport(source.describe(), target.describe(), dump.counts(), dump.checksums())
