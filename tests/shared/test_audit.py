"""The hash-chained audit log: append, verify, detect tampering, share between processes."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from pai_core.audit import GENESIS, AuditLog
from pai_core.log import register_secret


def test_entries_are_chained(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit" / "log.jsonl")
    first = log.append("dns.apply", plan="p1", result="ok")
    second = log.append("dns.apply", plan="p2", result="failed")
    assert first["seq"] == 1 and first["prev"] == GENESIS
    assert second["prev"] == first["hash"]
    assert [e["plan"] for e in log.entries()] == ["p1", "p2"]
    check = log.verify()
    assert check.ok and check.entries == 2


def test_reserved_fields_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="reserved"):
        AuditLog(tmp_path / "a.jsonl").append("x", hash="forged")


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_altered_entry_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    log = AuditLog(path)
    for i in range(3):
        log.append("fw.apply", n=i)
    lines = _lines(path)
    entry = json.loads(lines[1])
    entry["n"] = 99
    lines[1] = json.dumps(entry, sort_keys=True)
    path.write_text("\n".join(lines) + "\n")
    check = log.verify()
    assert not check.ok and check.first_bad_line == 2
    assert "hash" in check.reason


def test_removed_entry_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    log = AuditLog(path)
    for i in range(3):
        log.append("fw.apply", n=i)
    lines = _lines(path)
    path.write_text("\n".join([lines[0], lines[2]]) + "\n")
    check = log.verify()
    assert not check.ok and check.first_bad_line == 2


def test_secrets_are_redacted(tmp_path: Path) -> None:
    register_secret("s3cr3t-tsig-value")
    log = AuditLog(tmp_path / "a.jsonl")
    log.append("dns.apply", note="key s3cr3t-tsig-value used", password="hunter2hunter2")
    text = (tmp_path / "a.jsonl").read_text()
    assert "s3cr3t-tsig-value" not in text
    assert log.verify().ok


def _writer(path: str, worker: int, count: int) -> None:
    log = AuditLog(Path(path))
    for i in range(count):
        log.append("test.write", worker=worker, i=i)


def test_concurrent_processes_keep_one_valid_chain(tmp_path: Path) -> None:
    path = tmp_path / "shared.jsonl"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(path), w, 40)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    log = AuditLog(path)
    check = log.verify()
    assert check.ok, check
    assert check.entries == 160
    seen = {(e["worker"], e["i"]) for e in log.entries()}
    assert len(seen) == 160
