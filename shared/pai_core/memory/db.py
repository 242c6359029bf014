"""The one SQLite module of the memory: connections, schemas and transactions for every layer.

The graph, the full-text index, the vault's note table and the episodes keep their tables in one
file (WAL mode, so several server processes can share it). :class:`Database` gives each thread
its own connection, applies each layer's schema once per process, and runs transactions:

- :meth:`Database.write` starts with ``BEGIN IMMEDIATE`` (a deferred read-then-write transaction
  deadlocks under concurrency and ``busy_timeout`` cannot fix it) and retries while the database
  is busy, so callers never see "database is locked". It is all-or-nothing: a process killed in
  the middle leaves nothing of it behind.
- :attr:`Database.commit_hooks` are told before and after each write's commit (the Redis
  write generation that invalidates cached search results).
- :meth:`Database.read` is one consistent snapshot; :meth:`Database.conn` is for single reads.

Errors of the file itself (cannot open, read-only, disk full, I/O) become
:class:`~pai_core.errors.BackendUnavailable` naming the file, with nothing written.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol, TypeVar

from pai_core.errors import BackendUnavailable

__all__ = ["BUSY_DEADLINE_S", "CommitHook", "Database", "connect", "is_busy"]

BUSY_DEADLINE_S = 60.0
T = TypeVar("T")


def connect(path: Path) -> sqlite3.Connection:
    """A connection with the settings every PAI SQLite user needs (WAL, busy timeout)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=30000")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def retry_busy(fn: Callable[[], T], deadline_s: float = BUSY_DEADLINE_S) -> T:
    """Run ``fn`` again while SQLite says the database is busy, up to ``deadline_s``."""
    deadline = time.monotonic() + deadline_s
    delay = 0.005
    while True:
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            if not is_busy(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)


class CommitHook(Protocol):
    """Told about each write transaction: just before its commit (raising rolls it back) and
    right after it (:class:`pai_core.memory.generation.Generation`)."""

    def before_commit(self) -> None: ...
    def after_commit(self) -> None: ...


class Database:
    """One SQLite file: a connection per thread, schemas applied once, safe transactions."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._schemas: set[str] = set()
        self.commit_hooks: list[CommitHook] = []  # told about every write transaction

    def describe(self) -> str:
        return f"sqlite:{self.path}"

    def unavailable(self, exc: BaseException) -> BackendUnavailable:
        """The error a caller sees when the file itself fails (open, read-only, full, I/O)."""
        text = str(exc)
        hint = "Check that the file and its directory exist and are writable, then call again."
        if "readonly" in text.replace("-", "").replace(" ", ""):
            hint = (
                "The memory database is read-only: make it writable (or point PAI_MEMORY_DB_PATH "
                "at a writable file), then call again."
            )
        return BackendUnavailable(
            f"the memory database {self.path} failed: {text}; nothing was written", hint=hint
        )

    def conn(self) -> sqlite3.Connection:
        """This thread's connection (opened on first use)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = connect(self.path)
            except (sqlite3.Error, OSError) as exc:
                raise self.unavailable(exc) from exc
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def ensure_schema(self, name: str, statements: Sequence[str], *, check: str = "") -> None:
        """Apply a layer's DDL once per process (``IF NOT EXISTS`` statements).

        ``check`` is an optional query that returns a row when the schema is already there: a
        read-only memory can then still be read.
        """
        if name in self._schemas:
            return
        conn = self.conn()
        if check:
            try:
                if conn.execute(check).fetchone():
                    self._schemas.add(name)
                    return
            except sqlite3.OperationalError:
                pass

        def create() -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in statements:
                    if statement.strip():
                        conn.execute(statement)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        try:
            retry_busy(create)
        except sqlite3.Error as exc:
            raise self.unavailable(exc) from exc
        self._schemas.add(name)

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """One consistent snapshot for several reads."""
        conn = self.conn()
        retry_busy(lambda: conn.execute("BEGIN"))
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """An all-or-nothing write transaction, serialised against every other writer."""
        conn = self.conn()
        try:
            retry_busy(lambda: conn.execute("BEGIN IMMEDIATE"))
        except sqlite3.OperationalError as exc:
            raise self.unavailable(exc) from exc
        changes = conn.total_changes
        try:
            yield conn
            changed = conn.total_changes != changes  # a write that wrote nothing tells nobody
            for hook in self.commit_hooks if changed else ():
                hook.before_commit()  # raising rolls the write back
        except sqlite3.OperationalError as exc:
            conn.execute("ROLLBACK")
            if is_busy(exc):
                raise
            raise self.unavailable(exc) from exc
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        try:
            retry_busy(lambda: conn.execute("COMMIT"))
        except sqlite3.OperationalError as exc:
            conn.execute("ROLLBACK")
            raise self.unavailable(exc) from exc
        for hook in self.commit_hooks if changed else ():
            hook.after_commit()

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()
