"""Per-job temporary workspaces that are removed on every exit path, and a sweep of orphans.

A workspace is a directory ``<root>/<prefix>-<random>`` holding a ``.owner`` file with the PID
that created it. :func:`job_workspace` removes it when the block exits, whether it returns,
raises or is cancelled. :func:`sweep_orphans` removes workspaces whose owner process is gone, or
that are older than a limit, so a crash (kill -9) leaves nothing behind for long.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["job_workspace", "pid_alive", "sweep_orphans"]

log = logging.getLogger(__name__)
_OWNER = ".owner"


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (one we may not signal counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def job_workspace(root: Path, prefix: str = "job") -> Iterator[Path]:
    """Yield a fresh private directory under ``root``; remove it on every exit path."""
    root.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=root))
    (path / _OWNER).write_text(str(os.getpid()))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def sweep_orphans(root: Path, max_age_s: float = 3600.0) -> list[Path]:
    """Remove workspaces whose owner died, or older than ``max_age_s``; return what was removed.

    Workspaces of live processes younger than the limit are kept.
    """
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    now = time.time()
    for child in root.iterdir():
        if not child.is_dir() or child.is_symlink():
            continue
        owner_file = child / _OWNER
        try:
            owner = int(owner_file.read_text().strip())
        except (OSError, ValueError):
            owner = -1
        try:
            age = now - child.stat().st_mtime
        except OSError:
            continue
        # A directory without an owner yet may be one being created right now: give it a minute.
        orphaned = not pid_alive(owner) if owner > 0 else age > 60
        if orphaned or age > max_age_s:
            shutil.rmtree(child, ignore_errors=True)
            removed.append(child)
    if removed:
        log.info("swept %d orphan workspace(s) under %s", len(removed), root)
    return removed
