"""The ledger's default store: one SQLite file (WAL) shared by every manager on this machine.

Each ledger transaction is one ``BEGIN IMMEDIATE`` transaction of the shared PAI SQLite module,
so a dispatch in one process sees every lease taken by another. Queued jobs are found through
a partial index (client, priority, age); the distinct clients with queued jobs through a
skip-scan over it, so a dispatch costs the same with 100 or 10,000 jobs waiting.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from pai_core.memory.db import Database
from pai_gpu_jobs.ledger import Job, Lease, WorkerState, iter_chunks

__all__ = ["SqliteStore"]

AUTOCHECKPOINT_PAGES = 20_000  # about 80 MB of log at 4 KiB pages before a commit copies it

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS jobs (
        seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, kind TEXT NOT NULL,
        family TEXT NOT NULL, client TEXT NOT NULL, model TEXT NOT NULL, params TEXT NOT NULL,
        priority INTEGER NOT NULL, idem TEXT, deadline REAL, pinned TEXT, state TEXT NOT NULL,
        attempt INTEGER NOT NULL, worker TEXT, gpu TEXT, avoid TEXT NOT NULL,
        submitted_at REAL NOT NULL, started_at REAL, finished_at REAL, result TEXT, error TEXT,
        cancel INTEGER NOT NULL DEFAULT 0)""",
    "CREATE UNIQUE INDEX IF NOT EXISTS jobs_idem ON jobs(client, idem) WHERE idem IS NOT NULL",
    """CREATE INDEX IF NOT EXISTS jobs_queue ON jobs(client, priority DESC, seq)
        WHERE state = 'queued'""",
    "CREATE INDEX IF NOT EXISTS jobs_deadline ON jobs(deadline) WHERE state = 'queued'",
    "CREATE INDEX IF NOT EXISTS jobs_finished ON jobs(finished_at)",
    """CREATE TABLE IF NOT EXISTS leases (job_id TEXT PRIMARY KEY, worker TEXT NOT NULL,
        manager TEXT NOT NULL, client TEXT NOT NULL, expires_at REAL NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS workers (name TEXT PRIMARY KEY, drained INTEGER NOT NULL,
        healthy INTEGER NOT NULL, reason TEXT, last_assigned INTEGER NOT NULL)""",
    "CREATE TABLE IF NOT EXISTS clients (client TEXT PRIMARY KEY, last_served INTEGER NOT NULL)",
    """CREATE TABLE IF NOT EXISTS managers (id TEXT PRIMARY KEY, host TEXT NOT NULL,
        pid INTEGER NOT NULL, heartbeat REAL NOT NULL)""",
    "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
]
COLUMNS = [
    "seq",
    "id",
    "kind",
    "family",
    "client",
    "model",
    "params",
    "priority",
    "idem",
    "deadline",
    "pinned",
    "state",
    "attempt",
    "worker",
    "gpu",
    "avoid",
    "submitted_at",
    "started_at",
    "finished_at",
    "result",
    "error",
    "cancel",
]
_JSON = {"params", "avoid", "result"}
_FILTERS = {"state", "client", "kind", "worker", "model"}


def _row(job: Job) -> list[Any]:
    data = job.to_dict()
    return [
        json.dumps(data[c]) if c in _JSON else int(data[c]) if c == "cancel" else data[c]
        for c in COLUMNS
    ]


def _job(row: Sequence[Any]) -> Job:
    data = dict(zip(COLUMNS, row, strict=True))
    for c in _JSON:
        data[c] = json.loads(data[c]) if data[c] is not None else None
    data["cancel"] = bool(data["cancel"])
    return Job.from_dict(data)


class SqliteStore:
    """Ledger store over ``path`` (created on first use)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = Database(path)
        self._conn = threading.local()
        self.db.ensure_schema("gpu_jobs", SCHEMA)

    def describe(self) -> str:
        return f"sqlite:{self.path}"

    @property
    def c(self) -> sqlite3.Connection:
        conn: sqlite3.Connection = self._conn.current
        return conn

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._joined(self.db.write):
            yield

    @contextmanager
    def reading(self) -> Iterator[None]:
        """A read snapshot (WAL): it neither waits for nor blocks a writer."""
        with self._joined(self.db.read):
            yield

    @contextmanager
    def _joined(
        self, begin: Callable[[], AbstractContextManager[sqlite3.Connection]]
    ) -> Iterator[None]:
        if getattr(self._conn, "current", None) is not None:  # nested: join the outer one
            yield
            return
        if not getattr(self._conn, "tuned", False):  # this thread's connection, once
            self.db.conn().execute(f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_PAGES}")
            self._conn.tuned = True
        with begin() as conn:
            self._conn.current = conn
            try:
                yield
            finally:
                self._conn.current = None

    def maintain(self) -> None:
        """Copy the write-ahead log into the database without blocking readers or writers.

        SQLite would otherwise do it inside whichever commit crosses its threshold (1000
        pages), holding the write lock for the copy and its fsync: the slow tail of dispatch.
        Each manager's keeper calls this instead; the raised threshold is the safety net for
        a process that has no keeper."""
        self.db.conn().execute("PRAGMA wal_checkpoint(PASSIVE)")

    def next_seq(self) -> int:
        row = self.c.execute(
            "INSERT INTO counters(name, value) VALUES ('seq', 1) "
            "ON CONFLICT(name) DO UPDATE SET value = value + 1 RETURNING value"
        ).fetchone()
        return int(row[0])

    def insert(self, job: Job) -> None:
        marks = ",".join("?" * len(COLUMNS))
        self.c.execute(f"INSERT INTO jobs({','.join(COLUMNS)}) VALUES ({marks})", _row(job))

    def save(self, job: Job) -> None:
        sets = ",".join(f"{c} = ?" for c in COLUMNS[1:])
        self.c.execute(f"UPDATE jobs SET {sets} WHERE seq = ?", [*_row(job)[1:], job.seq])

    def load(self, job_id: str) -> Job | None:
        row = self.c.execute(f"SELECT {','.join(COLUMNS)} FROM jobs WHERE id = ?", (job_id,))
        found = row.fetchone()
        return _job(found) if found else None

    def find_idem(self, client: str, key: str) -> str | None:
        row = self.c.execute(
            "SELECT id FROM jobs WHERE client = ? AND idem = ?", (client, key)
        ).fetchone()
        return str(row[0]) if row else None

    def queued_clients(self) -> list[str]:
        rows = self.c.execute(
            """WITH RECURSIVE c(x) AS (
                 SELECT MIN(client) FROM jobs WHERE state = 'queued'
                 UNION ALL
                 SELECT (SELECT MIN(client) FROM jobs WHERE state = 'queued' AND client > x)
                 FROM c WHERE x IS NOT NULL)
               SELECT x FROM c WHERE x IS NOT NULL"""
        )
        return [str(r[0]) for r in rows]

    def heads(self, client: str, limit: int) -> Iterator[Job]:
        rows = self.c.execute(
            f"SELECT {','.join(COLUMNS)} FROM jobs INDEXED BY jobs_queue "
            "WHERE state = 'queued' AND client = ? ORDER BY priority DESC, seq LIMIT ?",
            (client, limit),
        ).fetchall()
        return map(_job, rows)  # decoded one by one: the scheduler mostly takes the first

    def leases(self) -> list[Lease]:
        rows = self.c.execute("SELECT job_id, worker, manager, client, expires_at FROM leases")
        return [Lease(*r) for r in rows]

    def put_lease(self, lease: Lease) -> None:
        self.c.execute(
            "INSERT OR REPLACE INTO leases VALUES (?, ?, ?, ?, ?)",
            (lease.job_id, lease.worker, lease.manager, lease.client, lease.expires_at),
        )

    def drop_lease(self, job_id: str) -> None:
        self.c.execute("DELETE FROM leases WHERE job_id = ?", (job_id,))

    def renew(self, manager: str, job_ids: Sequence[str], expires_at: float) -> None:
        self.c.executemany(
            "UPDATE leases SET expires_at = ? WHERE job_id = ? AND manager = ?",
            [(expires_at, j, manager) for j in job_ids],
        )

    def served(self, clients: Sequence[str]) -> dict[str, int]:
        rows = self.c.execute("SELECT client, last_served FROM clients")
        wanted = set(clients)
        return {str(c): int(v) for c, v in rows if c in wanted}

    def set_served(self, client: str, seq: int) -> None:
        self.c.execute(
            "INSERT INTO clients VALUES (?, ?) ON CONFLICT(client) "
            "DO UPDATE SET last_served = excluded.last_served",
            (client, seq),
        )

    def worker_states(self) -> dict[str, WorkerState]:
        rows = self.c.execute("SELECT name, drained, healthy, reason, last_assigned FROM workers")
        return {str(n): WorkerState(bool(d), bool(h), r, int(a)) for n, d, h, r, a in rows}

    def put_worker_state(self, name: str, state: WorkerState) -> None:
        self.c.execute(
            "INSERT OR REPLACE INTO workers VALUES (?, ?, ?, ?, ?)",
            (name, int(state.drained), int(state.healthy), state.reason, state.last_assigned),
        )

    def heartbeat(self, manager: str, host: str, pid: int, at: float) -> None:
        self.c.execute(
            "INSERT OR REPLACE INTO managers VALUES (?, ?, ?, ?)", (manager, host, pid, at)
        )

    def managers(self) -> list[tuple[str, str, int, float]]:
        rows = self.c.execute("SELECT id, host, pid, heartbeat FROM managers")
        return [(str(a), str(b), int(c), float(d)) for a, b, c, d in rows]

    def drop_manager(self, manager: str) -> None:
        self.c.execute("DELETE FROM managers WHERE id = ?", (manager,))

    def queued_deadlines(self, now: float) -> list[str]:
        rows = self.c.execute(
            "SELECT id FROM jobs WHERE state = 'queued' AND deadline IS NOT NULL AND deadline <= ?",
            (now,),
        )
        return [str(r[0]) for r in rows]

    def queued_counts(self) -> dict[tuple[str, str], int]:
        rows = self.c.execute(
            "SELECT family, model, COUNT(*) FROM jobs WHERE state = 'queued' GROUP BY family, model"
        )
        return {(str(f), str(m)): int(n) for f, m, n in rows}

    def finished_since(self, since: float) -> list[tuple[str, float]]:
        rows = self.c.execute(
            "SELECT worker, finished_at FROM jobs WHERE finished_at >= ? AND state = 'succeeded'",
            (since,),
        )
        return [(str(w), float(t)) for w, t in rows]

    def select(
        self, filters: dict[str, str | None], limit: int, offset: int
    ) -> tuple[list[Job], int]:
        where, args = [], []
        for key, value in filters.items():
            if value is not None and key in _FILTERS:
                where.append(f"{key} = ?")
                args.append(value)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        total = int(self.c.execute(f"SELECT COUNT(*) FROM jobs {clause}", args).fetchone()[0])
        rows = self.c.execute(
            f"SELECT {','.join(COLUMNS)} FROM jobs {clause} ORDER BY seq DESC LIMIT ? OFFSET ?",
            [*args, limit, offset],
        )
        return [_job(r) for r in rows], total

    def pinned_queued(self, manager: str) -> list[str]:
        rows = self.c.execute(
            "SELECT id FROM jobs WHERE state = 'queued' AND pinned = ?", (manager,)
        )
        return [str(r[0]) for r in rows]

    def cancel_requested(self, job_ids: Sequence[str]) -> list[str]:
        found: list[str] = []
        for part in iter_chunks(job_ids, 500):
            marks = ",".join("?" * len(part))
            rows = self.c.execute(
                f"SELECT id FROM jobs WHERE cancel = 1 AND id IN ({marks})", list(part)
            )
            found.extend(str(r[0]) for r in rows)
        return found
