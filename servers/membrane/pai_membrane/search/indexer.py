"""Keeps the derived indexes caught up in the background, so that search only reads.

One daemon thread per server process: it indexes facts written since the last sync (by this
process or any other server writing the shared memory) into full text, then embeds documents
that wait for a vector, a small batch at a time. It wakes when MemBrane writes
(:meth:`Indexer.kick`) and every ``interval_s`` otherwise, to find what other processes wrote.
A failure is logged and retried at the next wake-up; it never reaches a tool call.

Embedding competes with search for the same cores, so before each batch the indexer waits
until no search is running and none has started for ``QUIET_S`` (:class:`SearchActivity`),
for at most ``MAX_YIELD_S`` (so a steady stream of searches cannot starve it), and its batches
are small, so a search that starts while one runs shares the cores only briefly.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["EMBED_STEP", "Indexer", "SearchActivity"]

log = logging.getLogger(__name__)

EMBED_STEP = 16  # documents embedded between checks for searches, new facts and stop
QUIET_S = 0.05
MAX_YIELD_S = 2.0


class SearchActivity:
    """Searches in flight, and when the last one started or ended: the indexer waits for a
    quiet moment before each batch."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._running = 0
        self._last = 0.0

    @contextmanager
    def running(self) -> Iterator[None]:
        with self._cond:
            self._running += 1
            self._last = time.monotonic()
        try:
            yield
        finally:
            with self._cond:
                self._running -= 1
                self._last = time.monotonic()
                self._cond.notify_all()

    def wait_quiet(self, quiet_s: float = QUIET_S, max_wait_s: float = MAX_YIELD_S) -> float:
        """Block until no search runs and none did for ``quiet_s`` (at most ``max_wait_s``);
        return how long it waited."""
        start = time.monotonic()
        deadline = start + max_wait_s
        with self._cond:
            while True:
                now = time.monotonic()
                if now >= deadline:
                    break
                if self._running:
                    self._cond.wait(deadline - now)
                    continue
                calm = self._last + quiet_s - now
                if calm <= 0:
                    break
                self._cond.wait(min(calm, deadline - now))
        return time.monotonic() - start


class Indexer:
    def __init__(
        self,
        sync_facts: Callable[[], int],
        embed_some: Callable[[int], int],
        *,
        interval_s: float = 2.0,
        activity: SearchActivity | None = None,
    ) -> None:
        self._sync_facts = sync_facts
        self._embed_some = embed_some
        self.interval_s = interval_s
        self.activity = activity
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.last_error: str | None = None
        self.passes = 0
        self.yielded_s = 0.0  # time spent waiting for searches to finish

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

    def _embed_step(self) -> int:
        if self.activity is not None:
            self.yielded_s += self.activity.wait_quiet()
        if self._stop.is_set():
            return 0
        return self._embed_some(EMBED_STEP)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._sync_facts()
                while not self._stop.is_set() and self._embed_step():
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
