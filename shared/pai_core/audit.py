"""An append-only, hash-chained audit log for mutating operations (JSON lines).

Each line is one JSON object with ``seq``, ``ts``, ``prev`` (the previous entry's hash),
the caller's fields, and ``hash`` = SHA-256 over the canonical JSON of everything else.
Appends take an exclusive ``flock`` so several server processes can share one file, and are
fsynced before :meth:`AuditLog.append` returns. :meth:`AuditLog.verify` recomputes the chain
and reports the first entry that was altered, removed or reordered.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pai_core.log import redact

__all__ = ["GENESIS", "AuditLog", "ChainCheck"]

GENESIS = "0" * 64
_RESERVED = frozenset({"seq", "ts", "prev", "hash"})


def _digest(entry: dict[str, Any]) -> str:
    body = {k: v for k, v in entry.items() if k != "hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ChainCheck:
    """Result of :meth:`AuditLog.verify`."""

    ok: bool
    entries: int
    first_bad_line: int | None = None
    reason: str = ""


class AuditLog:
    """Append-only audit log at ``path`` (created with its parent directories on first use)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _last(self, fh: Any) -> tuple[int, str]:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        if size == 0:
            return 0, GENESIS
        # Read backwards just far enough to find the last complete line.
        chunk = 4096
        pos = size
        buf = b""
        while pos > 0:
            step = min(chunk, pos)
            pos -= step
            fh.seek(pos)
            buf = fh.read(step) + buf
            lines = buf.rstrip(b"\n").split(b"\n")
            if len(lines) > 1 or pos == 0:
                last = json.loads(lines[-1])
                return int(last["seq"]), str(last["hash"])
            chunk *= 2
        return 0, GENESIS  # pragma: no cover - loop always returns

    def append(self, action: str, **fields: Any) -> dict[str, Any]:
        """Append one entry for ``action`` and return it (with its ``seq`` and ``hash``).

        String values are passed through secret redaction before they are written.
        """
        clash = _RESERVED & fields.keys()
        if clash:
            raise ValueError(f"audit fields {sorted(clash)} are reserved")
        clean = json.loads(redact(json.dumps(fields, default=str)))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "r+b") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                seq, prev = self._last(fh)
                entry: dict[str, Any] = {
                    "seq": seq + 1,
                    "ts": datetime.now(UTC).isoformat(timespec="microseconds"),
                    "prev": prev,
                    "action": action,
                    **clean,
                }
                entry["hash"] = _digest(entry)
                line = json.dumps(entry, sort_keys=True, ensure_ascii=False) + "\n"
                fh.write(line.encode())
                fh.flush()
                os.fsync(fh.fileno())
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        return entry

    def entries(self) -> Iterator[dict[str, Any]]:
        """Iterate over the entries, oldest first."""
        if not self.path.exists():
            return
        with self.path.open(encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    yield json.loads(line)

    def verify(self) -> ChainCheck:
        """Recompute the hash chain; report the first line that does not fit."""
        prev, count = GENESIS, 0
        if not self.path.exists():
            return ChainCheck(ok=True, entries=0)
        with self.path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    return ChainCheck(False, count, lineno, "line is not valid JSON")
                if entry.get("prev") != prev:
                    return ChainCheck(False, count, lineno, "prev does not match previous hash")
                if entry.get("seq") != count + 1:
                    return ChainCheck(False, count, lineno, "sequence number out of order")
                if _digest(entry) != entry.get("hash"):
                    return ChainCheck(False, count, lineno, "entry content does not match its hash")
                prev = entry["hash"]
                count += 1
        return ChainCheck(ok=True, entries=count)
