"""ChangeRecorder: servers record verified changes as facts, through the graph's conflict
rules, and a failure to record never raises."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pai_core.memory import open_memory
from pai_core.memory.record import ChangeFact, ChangeRecorder, PredicateSpec
from pai_core.memory.timeparse import iso
from pai_core.settings import MemorySettings

HAS_A = PredicateSpec("HAS_A", "one", "DNS A records.")
T0 = 1_780_000_000.0


@pytest.fixture
def memory(tmp_path: Path) -> MemorySettings:
    return MemorySettings(db_path=tmp_path / "memory.db", vault_path=tmp_path / "vault")


def test_a_change_supersedes_the_value_it_replaces(memory: MemorySettings) -> None:
    rec = ChangeRecorder(memory, "dns", predicates=[HAS_A])
    first = rec.record(7, [ChangeFact("www.example.com", "HAS_A", value="192.0.2.10")], at=T0)
    second = rec.record(
        8, [ChangeFact("www.example.com", "HAS_A", value="192.0.2.11")], at=T0 + 1000
    )
    assert (first.remembered, first.facts, first.source) == (True, 1, "dns:7")
    assert second.remembered and "www.example.com HAS_A 192.0.2.10" in second.detail
    facts = open_memory(memory).graph.get_entity("www.example.com", include_history=True).outgoing
    by_value = {f.value: f for f in facts}
    assert by_value["192.0.2.11"].current and by_value["192.0.2.11"].source == "dns:8"
    old = by_value["192.0.2.10"]
    assert not old.current and old.valid_to == by_value["192.0.2.11"].valid_from
    assert old.valid_from == iso(T0)  # the change's time, not now


def test_the_same_change_twice_is_one_fact(memory: MemorySettings) -> None:
    rec = ChangeRecorder(memory, "dns", predicates=[HAS_A])
    fact = ChangeFact("www.example.com", "HAS_A", value="192.0.2.10")
    assert rec.record(1, [fact], at=T0).facts == 1
    assert rec.record(2, [fact], at=T0 + 500).facts == 0  # unchanged
    graph = open_memory(memory).graph
    assert len(graph.get_entity("www.example.com", include_history=True).outgoing) == 1


def test_ended_facts_close_their_validity_without_retracting(memory: MemorySettings) -> None:
    rec = ChangeRecorder(memory, "dns", predicates=[HAS_A])
    rec.record(1, [ChangeFact("old.example.com", "HAS_A", value="192.0.2.99")], at=T0)
    note = rec.record(2, [ChangeFact("old.example.com", "HAS_A", ended=True)], at=T0 + 2000)
    assert note.remembered and note.facts == 1 and "ended 1" in note.detail
    (fact,) = open_memory(memory).graph.get_entity("old.example.com", include_history=True).outgoing
    assert not fact.current and fact.retracted_at is None
    assert fact.valid_to == iso(T0 + 2000)


def test_declared_predicates_are_single_valued(memory: MemorySettings) -> None:
    ChangeRecorder(memory, "dns", predicates=[HAS_A]).record(
        1, [ChangeFact("a.example.com", "HAS_A", value="192.0.2.1")]
    )
    preds = {p.name: p for p in open_memory(memory).graph.list_predicates()}
    assert preds["HAS_A"].cardinality == "one" and preds["HAS_A"].description == "DNS A records."


def test_off_writes_nothing(memory: MemorySettings) -> None:
    rec = ChangeRecorder(memory, "mail", enabled=False)
    note = rec.record(1, [ChangeFact("a@example.com", "HAS_STATUS", value="active")])
    assert not note.remembered and note.detail == "memory recording is off (PAI_MAIL_REMEMBER)"
    assert not memory.db_file.exists()


def test_a_memory_that_cannot_be_written_is_reported_not_raised(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("in the way")
    memory = MemorySettings(db_path=blocker / "memory.db", vault_path=tmp_path / "vault")
    note = ChangeRecorder(memory, "dns").record(3, [ChangeFact("x", "USES", object="y")])
    assert not note.remembered and note.source == "dns:3"
    assert "applied but not remembered" in note.detail and str(blocker) in note.detail


def test_a_refused_fact_is_reported_and_nothing_of_the_batch_is_written(
    memory: MemorySettings,
) -> None:
    rec = ChangeRecorder(memory, "gitlab")
    note = rec.record(
        4,
        [
            ChangeFact("Commit abc", "FIXES", object="Issue #1"),
            ChangeFact("Commit abc", "not a predicate!", object="Issue #2"),
        ],
    )
    assert not note.remembered and "predicate" in note.detail
    with pytest.raises(Exception, match="no entity"):
        open_memory(memory).graph.get_entity("Commit abc")


WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from pai_core.memory.record import ChangeFact, ChangeRecorder, PredicateSpec
    from pai_core.settings import MemorySettings
    db, server, count = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    memory = MemorySettings(db_path=db, vault_path=db.parent / "vault")
    rec = ChangeRecorder(memory, server, predicates=[PredicateSpec("HAS_A", "one")])
    for i in range(count):
        note = rec.record(i, [ChangeFact(f"{server}-{i}.example.com", "HAS_A", value=f"10.0.0.{i}"),
                              ChangeFact("shared.example.com", "HAS_A", value=f"{server}-{i}")])
        assert note.remembered, note.detail
""")


def test_two_servers_writing_one_memory_at_once_lose_nothing(memory: MemorySettings) -> None:
    count = 60
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(memory.db_file), server, str(count)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for server in ("dns", "mail")
    ]
    for p in procs:
        _out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
    graph = open_memory(memory).graph
    for server in ("dns", "mail"):
        for i in range(count):
            (fact,) = graph.get_entity(f"{server}-{i}.example.com").outgoing
            assert fact.value == f"10.0.0.{i}" and fact.source == f"{server}:{i}"
    shared = graph.get_entity("shared.example.com", include_history=True, limit=500).outgoing
    assert len(shared) == 2 * count and sum(f.current for f in shared) == 1
