"""Several processes share one store: no write is lost, none is doubled, no 'database is
locked' surfaces, and a process killed mid-batch leaves no partial batch."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from pai_core.memory.graph.service import GraphService
from pai_core.memory.graph.sqlite_store import SqliteGraphStore
from tests.shared.memory.facts import fact_in

WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from pai_core.memory.graph.service import GraphService
    from pai_core.memory.graph.sqlite_store import SqliteGraphStore
    from pai_core.memory.graph.views import FactIn
    def fact_in(d): return FactIn.model_validate(d)
    def facts_in(ds): return [FactIn.model_validate(d) for d in ds]
    db, worker, count = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    g = GraphService(SqliteGraphStore(db))
    for i in range(count):
        if i % 5 == 0:
            g.remember_many(facts_in([{"subject": f"w{worker}", "predicate": "USES",
                              "object": f"lib{worker}-{i}-{j}"} for j in range(5)]))
        else:
            g.remember(fact_in({"subject": f"w{worker}", "predicate": "USES", "object": f"x{worker}-{i}"}))
            g.remember(fact_in({"subject": "shared", "predicate": "HAS_STATUS", "value": f"{worker}-{i}"}))
    print("done", worker)
""")


def test_processes_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    SqliteGraphStore(db).close()
    workers, count = 4, 150
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(db), str(w), str(count)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(workers)
    ]
    outs = [p.communicate(timeout=240) for p in procs]
    for p, (_out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
        assert "locked" not in err.lower()
    g = GraphService(SqliteGraphStore(db))
    for w in range(workers):
        uses = g.query(subject=f"w{w}", predicate="USES", limit=500).facts
        expected = {f"lib{w}-{i}-{j}" for i in range(0, count, 5) for j in range(5)}
        expected |= {f"x{w}-{i}" for i in range(count) if i % 5}
        got = [f.object for f in uses]
        assert sorted(got) == sorted(expected)  # every write present exactly once
    # HAS_STATUS is single-valued: exactly one current value, the rest superseded history
    status = g.get_entity("shared").outgoing
    assert len(status) == 1
    history = g.query(subject="shared", include_history=True, limit=500).facts
    assert len(history) == workers * (count - count // 5)


KILLED = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from pai_core.memory.graph import service as svc
    from pai_core.memory.graph.batch import WriteBatch
    from pai_core.memory.graph.sqlite_store import SqliteGraphStore
    from pai_core.memory.graph.views import FactIn
    g = svc.GraphService(SqliteGraphStore(Path(sys.argv[1])))
    original = WriteBatch.flush
    def slow(self):
        original(self)  # every write of the batch is in the transaction, not committed
        print("halfway", flush=True)
        time.sleep(60)
    WriteBatch.flush = slow
    g.remember_many([FactIn(subject="batch", predicate="USES", object=f"o{i}")
                     for i in range(100)])
""")


def test_kill_9_during_a_batch_leaves_no_partial_batch(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    g = GraphService(SqliteGraphStore(db))
    g.remember(fact_in({"subject": "before", "predicate": "USES", "object": "ok"}))
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED, str(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "halfway"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    fresh = GraphService(SqliteGraphStore(db))
    assert fresh.stats()["facts"] == 1
    import sqlite3

    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert json.dumps(conn.execute("SELECT count(*) FROM g_entities").fetchone()) == "[2]"
    # and the store still takes writes
    assert (
        fresh.remember(fact_in({"subject": "after", "predicate": "USES", "object": "ok"})).status
        == "written"
    )
