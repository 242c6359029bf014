"""Keeps the derived indexes caught up in the background, so that search only reads.

One daemon thread per server process: it indexes facts written since the last sync (by this
process or any other server writing the shared memory) into full text, then embeds documents
that wait for a vector, a batch at a time. It wakes when MemBrane writes (:meth:`Indexer.kick`)
and every ``interval_s`` otherwise, to find what other processes wrote. A failure is logged and
retried at the next wake-up; it never reaches a tool call.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

__all__ = ["Indexer"]

log = logging.getLogger(__name__)

EMBED_STEP = 64  # documents embedded between checks for new facts and for stop


class Indexer:
    def __init__(
        self,
        sync_facts: Callable[[], int],
        embed_some: Callable[[int], int],
        *,
        interval_s: float = 2.0,
    ) -> None:
        self._sync_facts = sync_facts
        self._embed_some = embed_some
        self.interval_s = interval_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.last_error: str | None = None
        self.passes = 0

    def start(self) -> None:
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="pai-indexer", daemon=True)
                self._thread.start()

    def kick(self) -> None:
        """Something was written: catch up now rather than at the next interval."""
        self.start()
        self._wake.set()

    @property
    def state(self) -> str:
        if self._thread is None:
            return "not started"
        if self.last_error:
            return f"retrying after: {self.last_error}"
        return "running" if self._thread.is_alive() else "stopped"

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._sync_facts()
                while not self._stop.is_set() and self._embed_some(EMBED_STEP):
                    if self._wake.is_set():  # new writes: index their facts before embedding on
                        self._wake.clear()
                        self._sync_facts()
                self.last_error = None
            except Exception as exc:  # keep the thread; the next pass tries again
                self.last_error = str(exc) or type(exc).__name__
                log.warning("background indexing failed (will retry): %s", exc)
            self.passes += 1
            self._wake.wait(self.interval_s)
            self._wake.clear()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
