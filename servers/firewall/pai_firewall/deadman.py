"""The dead-man timer: a pending change is persisted and rolled back unless confirmed in time.

``<data_dir>/pending.json`` holds the change waiting for confirmation: its deadline and the nft
batch that restores the table as it was before (plus that table's checksum, to verify the
restore). A guard process (:mod:`pai_firewall.guard`) is started in its own session before the
change is applied, so it survives the server's exit and a ``kill -9``; at the deadline it takes
the state lock, and if the change is still pending it applies the rollback, verifies it, writes
the audit entry and clears the pending file. A server starting up does the same for an expired
change whose guard is gone, and starts a new guard for one still within its window.

Every reader and writer of the pending file holds ``<data_dir>/state.lock`` (``flock``); the
kernel releases it when its holder dies, so a killed server never blocks the guard.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pai_core.audit import AuditLog
from pai_firewall.backend import NftError, NftRunner
from pai_firewall.parse import parse_table

__all__ = [
    "PENDING",
    "clear_pending",
    "guard_alive",
    "read_pending",
    "recover",
    "roll_back_pending",
    "spawn_guard",
    "state_lock",
    "write_json",
]

log = logging.getLogger(__name__)
PENDING = "pending.json"


def write_json(path: Path, data: dict[str, Any], *, durable: bool = False) -> None:
    """Write ``data`` to ``path`` atomically (temp file, rename); fsynced when ``durable``
    (the pending change must survive a crash; a lost plan is only planned again)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w") as fh:
        json.dump(data, fh, sort_keys=True)
        if durable:
            fh.flush()
            os.fsync(fh.fileno())
    tmp.replace(path)


@contextlib.contextmanager
def state_lock(data_dir: Path) -> Iterator[None]:
    """Exclusive lock over the pending state (blocks until the holder releases or dies)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / "state.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def read_pending(data_dir: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads((data_dir / PENDING).read_text())
    except FileNotFoundError:
        return None
    return data


def clear_pending(data_dir: Path) -> None:
    (data_dir / PENDING).unlink(missing_ok=True)


def guard_alive(pid: int | None) -> bool:
    """Whether ``pid`` is a live (not zombie) rollback guard."""
    if not pid:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X") and b"pai_firewall.guard" in cmdline


def spawn_guard(data_dir: Path, change_id: str) -> int:
    """Start the guard for ``change_id`` detached from this process; return its PID.

    A shell starts it in the background and exits at once, so the guard belongs to no server
    process (it is re-parented, in a session of its own) and outlives any of them.
    """
    log_path = data_dir / "guard.log"
    launcher = subprocess.run(
        [
            "/bin/sh",
            "-c",
            '"$@" </dev/null >/dev/null 2>>"$LOG" & echo $!',
            "sh",
            sys.executable,
            "-m",
            "pai_firewall.guard",
            str(data_dir),
            change_id,
        ],
        env={**os.environ, "LOG": str(log_path)},
        capture_output=True,
        text=True,
        check=True,
        start_new_session=True,
        timeout=30,
    )
    return int(launcher.stdout.strip())


def runner_of(pending: dict[str, Any]) -> NftRunner:
    return NftRunner(
        table=pending["table"], netns=pending.get("netns"), nft=pending["nft"], ip=pending["ip"]
    )


def roll_back_pending(data_dir: Path, pending: dict[str, Any], reason: str) -> dict[str, Any]:
    """Restore the table from ``pending`` (caller holds the state lock), verify, audit, clear.

    Returns the audit entry. A rollback that fails keeps the pending file, so the next start or
    the next guard tries again.
    """
    runner = runner_of(pending)
    fields = {
        "table": pending["table"],
        "netns": pending.get("netns"),
        "change_id": pending["change_id"],
        "plan_id": pending.get("plan_id"),
        "reason": reason,
    }
    audit = AuditLog(Path(pending["audit_log"]))
    started = time.monotonic()
    try:
        runner.apply(pending["rollback_batch"])
        live = parse_table(runner.list_table())
    except NftError as exc:
        log.error("rollback of %s failed: %s", pending["change_id"], exc)
        return audit.append("firewall.rollback", **fields, result="failed", error=str(exc))
    verified = live.checksum() == pending["rollback_checksum"]
    record = data_dir / "changes" / f"{pending['change_id']}.json"
    with contextlib.suppress(OSError, ValueError):
        change = json.loads(record.read_text())
        change.update(state="rolled_back", rolled_back_at=time.time(), rollback_reason=reason)
        write_json(record, change)
    clear_pending(data_dir)
    return audit.append(
        "firewall.rollback",
        **fields,
        result="rolled_back" if verified else "rolled_back-unverified",
        verified=verified,
        rollback_ms=round((time.monotonic() - started) * 1000, 1),
        late_by_s=round(max(0.0, time.time() - float(pending["deadline"])), 3),
    )


def recover(data_dir: Path) -> str | None:
    """At start-up: roll back an expired pending change, or re-arm a guard for one in time.

    Returns what was done, for the log (None when nothing is pending).
    """
    with state_lock(data_dir):
        pending = read_pending(data_dir)
        if pending is None:
            return None
        if time.time() >= float(pending["deadline"]):
            entry = roll_back_pending(data_dir, pending, "expired, found at start-up")
            return f"rolled back expired change {pending['change_id']}: {entry['result']}"
        if guard_alive(pending.get("guard_pid")):
            return f"change {pending['change_id']} is pending; its guard is running"
        pending["guard_pid"] = spawn_guard(data_dir, pending["change_id"])
        write_json(data_dir / PENDING, pending, durable=True)
        return f"change {pending['change_id']} is pending; started a new guard"
