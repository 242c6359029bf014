"""File-system limits of paths a caller names (notes in the vault, transcripts).

A path too long for the file system, or one the file system refuses for its shape (a file where
a folder should be), is the caller's mistake and becomes an :class:`InvalidInput` naming the
argument; a refusal of the machine itself (permissions, a full disk) becomes a
:class:`BackendUnavailable`. Messages never echo the path in full: it may be 100 kB long.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pai_core.errors import BackendUnavailable, InvalidInput

__all__ = ["NAME_MAX", "PATH_MAX", "check_length", "os_errors"]

NAME_MAX = 255  # bytes in one file name (Linux, macOS; ext4, XFS, btrfs, APFS)
PATH_MAX = 4096  # bytes in a whole path handed to the kernel (Linux)

# Errors that say the path itself is wrong, not the machine.
_CALLER_ERRNOS = {
    errno.ENAMETOOLONG,
    errno.ENOTDIR,
    errno.EISDIR,
    errno.EEXIST,
    errno.ELOOP,
    errno.EINVAL,
    errno.EILSEQ,
}


def _pathconf(folder: Path) -> tuple[int, int]:
    return os.pathconf(folder, "PC_NAME_MAX"), os.pathconf(folder, "PC_PATH_MAX")


def _limits(path: Path, within: Path | None) -> tuple[int, int]:
    """NAME_MAX and PATH_MAX of the file system holding ``path``: those of ``within`` (an
    existing folder above it), else of its deepest existing folder, found from the top down
    (the path itself may be too long even to look at)."""
    limits = (NAME_MAX, PATH_MAX)
    if within is not None:
        try:
            return _pathconf(within)
        except (OSError, ValueError, AttributeError):
            return limits
    probe = Path(path.anchor or ".")
    for part in path.parts[1:] if path.anchor else path.parts:
        try:
            if not probe.is_dir():
                break
            limits = _pathconf(probe)
        except (OSError, ValueError, AttributeError):  # too long, not POSIX, or no such name
            break
        probe = probe / part
    return limits


def _size(text: str) -> int:
    """Bytes of ``text`` as the file system sees them (a lone surrogate counts, not raises)."""
    return len(text.encode("utf-8", "surrogatepass"))


def check_length(path: Path, *, field: str, within: Path | None = None) -> None:
    """Refuse ``path`` when a name in it or the whole of it is too long to open; ``within``:
    an existing folder above it on the same file system (the vault), whose limits apply."""
    whole = _size(str(path))
    name_max, path_max = _limits(path, within) if whole < PATH_MAX else (NAME_MAX, PATH_MAX)
    if whole >= path_max:
        raise InvalidInput(
            f"{field} is too long for the file system ({whole} bytes; at most {path_max - 1} "
            "for the whole path)",
            field=field,
            hint="Use a shorter path; nothing was changed.",
        )
    for part in path.parts:
        size = _size(part)
        if size > name_max:
            raise InvalidInput(
                f"{field} has a name of {size} bytes, longer than the file system allows "
                f"({name_max} bytes per folder or file name)",
                field=field,
                hint="Use shorter folder and file names; nothing was changed.",
            )


@contextmanager
def os_errors(field: str, doing: str) -> Iterator[None]:
    """Turn an ``OSError`` raised while ``doing`` something with ``field``'s path into a
    PAI error that says what failed and that nothing was changed."""
    try:
        yield
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        if exc.errno in _CALLER_ERRNOS:
            raise InvalidInput(
                f"cannot {doing}: {reason}",
                field=field,
                hint="Name another path (a file name, not a folder, in existing folders); "
                "nothing was changed.",
            ) from None
        raise BackendUnavailable(
            f"cannot {doing}: {reason}",
            field=field,
            hint="Check the permissions and free space of the folder, then retry; "
            "nothing was changed.",
        ) from None
