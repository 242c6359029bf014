"""Where screenshots and diffs go, and the sweep that keeps the directory bounded."""

from __future__ import annotations

import logging
import re
import secrets
import time
from pathlib import Path

__all__ = ["ArtifactStore"]

log = logging.getLogger(__name__)


class ArtifactStore:
    def __init__(self, root: Path, max_age_s: int, max_bytes: int) -> None:
        self.root = root
        self.max_age_s = max_age_s
        self.max_bytes = max_bytes
        self._last_sweep = 0.0

    def new_path(self, stem: str, suffix: str = ".png") -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        safe = re.sub(r"[^a-zA-Z0-9._-]+", "-", stem)[:60].strip("-") or "page"
        stamp = time.strftime("%Y%m%dT%H%M%S")
        return self.root / f"{stamp}-{safe}-{secrets.token_hex(3)}{suffix}"

    def sweep(self, force: bool = False) -> int:
        """Remove artifacts older than the age limit, then the oldest above the size budget."""
        now = time.time()
        if not force and now - self._last_sweep < 60:
            return 0
        self._last_sweep = now
        if not self.root.is_dir():
            return 0
        files = sorted(
            (p for p in self.root.iterdir() if p.is_file()), key=lambda p: p.stat().st_mtime
        )
        removed = 0
        kept = []
        for path in files:
            st = path.stat()
            if now - st.st_mtime > self.max_age_s:
                path.unlink(missing_ok=True)
                removed += 1
            else:
                kept.append((path, st.st_size))
        total = sum(size for _, size in kept)
        for path, size in kept:
            if total <= self.max_bytes:
                break
            path.unlink(missing_ok=True)
            total -= size
            removed += 1
        if removed:
            log.info("swept %d artifact(s) from %s", removed, self.root)
        return removed
