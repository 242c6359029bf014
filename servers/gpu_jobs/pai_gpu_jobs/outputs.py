"""Job outputs: per-job workspaces, image verification, previews, and the age sweep.

An attempt writes into a private directory under ``<root>/.attempts`` (owned by its PID, so an
orphan of a killed manager is swept); only the attempt whose result the ledger accepts moves
it to ``<root>/<job id>``, so a job has exactly one visible set of outputs.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import time
from pathlib import Path

from pai_core.errors import VerificationFailed
from pai_core.workspace import sweep_orphans

__all__ = ["Workspaces", "preview_png", "verify_images"]


def verify_images(blobs: list[bytes], width: int, height: int, count: int) -> list[str]:
    """Raise :class:`VerificationFailed` unless there are ``count`` images, each decoding as a
    ``width`` x ``height`` image; returns each image's format."""
    from PIL import Image, UnidentifiedImageError

    if len(blobs) != count:
        raise VerificationFailed(
            f"the worker returned {len(blobs)} image(s), {count} were asked for",
            hint="The job failed; nothing was kept.",
        )
    formats = []
    for i, blob in enumerate(blobs):
        try:
            with Image.open(io.BytesIO(blob)) as img:
                img.load()
                size, fmt = img.size, img.format or "?"
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
            raise VerificationFailed(
                f"image {i} from the worker does not decode: {exc}",
                hint="The job failed; nothing was kept.",
            ) from exc
        if size != (width, height):
            raise VerificationFailed(
                f"image {i} is {size[0]}x{size[1]}, {width}x{height} was asked for",
                hint="The job failed; nothing was kept.",
            )
        formats.append(fmt)
    return formats


def preview_png(path: Path, max_px: int) -> bytes:
    """A small PNG of the image at ``path`` (longest side ``max_px``)."""
    from PIL import Image

    with Image.open(path) as img:
        img.thumbnail((max_px, max_px))
        buf = io.BytesIO()
        img.convert("RGB").save(buf, format="PNG")
    return buf.getvalue()


class Workspaces:
    """Output directories of jobs under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.attempts = root / ".attempts"

    def attempt_dir(self, job_id: str) -> Path:
        self.attempts.mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(prefix=f"{job_id}-", dir=self.attempts))
        (path / ".owner").write_text(str(os.getpid()))
        return path

    def publish(self, attempt: Path, job_id: str) -> Path:
        final = self.root / job_id
        (attempt / ".owner").unlink(missing_ok=True)
        if final.exists():
            shutil.rmtree(final)
        attempt.replace(final)
        return final

    def discard(self, attempt: Path) -> None:
        shutil.rmtree(attempt, ignore_errors=True)

    def remove(self, job_id: str) -> list[str]:
        final = self.root / job_id
        if not final.is_dir():
            return []
        removed = sorted(str(p) for p in final.iterdir())
        shutil.rmtree(final, ignore_errors=True)
        return removed

    def sweep(self, max_age_s: float, now: float | None = None) -> list[Path]:
        """Remove orphaned attempts (owner gone) and outputs older than ``max_age_s``."""
        removed = sweep_orphans(self.attempts, max_age_s)
        if not self.root.is_dir():
            return removed
        now = time.time() if now is None else now
        for child in self.root.iterdir():
            if child.name.startswith(".") or not child.is_dir() or child.is_symlink():
                continue
            try:
                age = now - child.stat().st_mtime
            except OSError:
                continue
            if age > max_age_s:
                shutil.rmtree(child, ignore_errors=True)
                removed.append(child)
        return removed
