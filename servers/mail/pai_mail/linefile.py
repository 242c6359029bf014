"""A text file changed line by line: locked across processes, replaced atomically, never clobbered.

:meth:`LineFile.update` takes an exclusive ``flock`` on a side file (``<file>.lock``: the file
itself is replaced on every write, so it cannot carry the lock), re-reads the file, applies the
caller's change to the lines it just read (so a concurrent change by another process is merged,
not overwritten), writes a temp file in the same directory with the original's mode and owner
(Dovecot's auth process must still be able to read it), fsyncs it and renames it into place.
Before the rename it checks that nobody changed the file without the lock since it was read (an
editor, a script); if so it re-reads and applies the change again. Lines the change does not
touch are kept byte for byte.

Dovecot notices a new passwd-file by its whole-second mtime or its size: when a write of the
same size lands in the same second as the previous one (a password hash replaced by another),
the new file's mtime is moved to the next second so the change can never be missed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pai_core.errors import ConfigError, Conflict

__all__ = ["LineFile", "Snapshot"]

MAX_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The file's lines (without newlines) and the stamp they were read at."""

    lines: list[str]
    stamp: tuple[int, int, int]
    """(inode, size, mtime in ns): changes whenever anyone writes the file."""


def _stamp(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return (st.st_ino, st.st_size, st.st_mtime_ns)


class LineFile:
    """One file of lines at ``path``, written only through :meth:`update`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock_path = path.with_name(path.name + ".lock")
        self.writes = 0
        self.retries = 0

    def read(self) -> Snapshot:
        try:
            stamp = _stamp(self.path)
            text = self.path.read_text(encoding="utf-8", errors="surrogateescape")
        except FileNotFoundError as exc:
            raise ConfigError(
                f"{self.path} does not exist",
                hint="Create it (Dovecot's passwd-file or the Postfix map), then retry; "
                "nothing was changed.",
            ) from exc
        return Snapshot(text.splitlines(), stamp)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the exclusive cross-process lock of this file."""
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def update(
        self,
        change: Callable[[list[str]], list[str] | None],
        *,
        after_write: Callable[[], None] | None = None,
    ) -> bool:
        """Apply ``change`` to the current lines under the lock; True when the file changed.

        ``change`` gets a copy of the lines and returns the new lines, or None for "nothing to
        do"; it may raise (a duplicate, a missing entry) and then nothing is written.
        ``after_write`` runs still under the lock (e.g. ``postmap`` for a Postfix map).
        """
        with self.locked():
            for _attempt in range(MAX_ATTEMPTS):
                snap = self.read()
                new = change(list(snap.lines))
                if new is None or new == snap.lines:
                    return False
                if self._replace(snap, new):
                    self.writes += 1
                    if after_write is not None:
                        after_write()
                    return True
                self.retries += 1
        raise Conflict(
            f"{self.path} kept changing while it was being written ({MAX_ATTEMPTS} attempts)",
            hint="Something rewrites it without the lock; stop it and retry. Nothing was changed.",
        )

    def _replace(self, snap: Snapshot, lines: list[str]) -> bool:
        directory = self.path.parent
        st = self.path.stat()
        data = "".join(line + "\n" for line in lines).encode("utf-8", "surrogateescape")
        fd, tmp_name = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=directory)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fchmod(fh.fileno(), st.st_mode & 0o7777)
                # Not root: the file keeps our owner, and its mode.
                with contextlib.suppress(PermissionError):
                    os.fchown(fh.fileno(), st.st_uid, st.st_gid)
                os.fsync(fh.fileno())
            old_second = snap.stamp[2] // 1_000_000_000
            if int(time.time()) <= old_second and len(data) == snap.stamp[1]:
                later = (old_second + 1) * 1_000_000_000
                os.utime(tmp, ns=(later, later))
            if _stamp(self.path) != snap.stamp:
                tmp.unlink()
                return False
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return True
