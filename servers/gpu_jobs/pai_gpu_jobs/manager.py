"""The manager each server process runs: claims jobs from the shared ledger and runs them.

Threads: a dispatcher (claims jobs onto free slots whenever woken: by a submission, by a job
that ended, or by a worker re-admitted; every ``poll_s`` otherwise, for other processes' work),
a keeper (one transaction per period: heartbeat, lease renewal, cancels, recovery of dead
managers' jobs; then the store's housekeeping outside it, and the age sweep), a health checker (drains a failing worker, re-admits it
when it answers again) and a recorder (the audit entry and the shared memory of each succeeded
job, in completion order). Jobs run on a pool sized to the workers' total concurrency, so a
claimed slot always has a thread; the slot is handed back, and the dispatcher woken, as soon as
the outcome is in the ledger, before the (fsynced) audit entry and the memory are written.
Whoever waits here for a job (``watch``) is told each time this process starts it, ends an
attempt of it, or stores its memory note; jobs other processes run are only seen by reading
the ledger.
"""

from __future__ import annotations

import base64
import logging
import os
import queue
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pai_core.errors import VerificationFailed
from pai_core.workspace import pid_alive
from pai_gpu_jobs.ledger import Job, Ledger, SlotSpec, annotate
from pai_gpu_jobs.models import WorkerConfig
from pai_gpu_jobs.outputs import Workspaces, verify_images
from pai_gpu_jobs.workers import RunControl, Stopped, WorkerClient, WorkerFailed

__all__ = ["Manager"]

log = logging.getLogger(__name__)
Recorder = Callable[[Job], dict[str, Any] | None]


@dataclass
class _Local:
    attempt: int
    ctl: RunControl
    client: WorkerClient


class Manager:
    """One process's share of the work on the common queue."""

    def __init__(
        self,
        ledger: Ledger,
        clients: dict[str, WorkerClient],
        workspaces: Workspaces,
        *,
        poll_s: float = 0.1,
        health_interval_s: float = 5.0,
        max_attempts: int = 3,
        request_timeout_s: float = 600.0,
        workspace_max_age_s: float = 7 * 86400.0,
        recorder: Recorder | None = None,
        unrecorded: dict[str, Any] | None = None,
    ) -> None:
        self.ledger = ledger
        self.clients = clients
        self.workspaces = workspaces
        self.poll_s = poll_s
        self.health_interval_s = health_interval_s
        self.max_attempts = max_attempts
        self.request_timeout_s = request_timeout_s
        self.workspace_max_age_s = workspace_max_age_s
        self.recorder = recorder
        self.unrecorded = unrecorded  # the memory note of a job when there is no recorder
        self.host = socket.gethostname()
        self.id = f"{self.host}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.models: dict[str, frozenset[str]] = {
            n: frozenset(c.cfg.models) for n, c in clients.items()
        }
        self.local: dict[str, _Local] = {}
        self.sinks: dict[str, Callable[[dict[str, Any]], None]] = {}
        self._watchers: dict[str, list[Callable[[], None]]] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._records: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._recorded = False  # the recorder thread has ended
        self.capacity = sum(c.cfg.concurrency for c in clients.values()) or 1
        self.pool = ThreadPoolExecutor(max_workers=self.capacity, thread_name_prefix="gpu-job")
        self.started = False

    # ------------------------------------------------------------------ life cycle
    def start(self) -> None:
        if self.started:
            return
        self.started = True
        self.ledger.heartbeat(self.id, self.host, os.getpid())
        self.check_health()
        self.workspaces.sweep(self.workspace_max_age_s)
        loops = [self._dispatch_loop, self._keeper_loop, self._health_loop, self._record_loop]
        for target in loops:
            thread = threading.Thread(target=target, name=f"gpu-{target.__name__}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop taking work and hand this process's running jobs back to the queue."""
        if not self.started or self._stop.is_set():
            return
        self._stop.set()
        self._wake.set()
        with self._lock:
            running = list(self.local)
            for entry in self.local.values():
                entry.ctl.cancel.set()
        try:
            self.ledger.release(self.id, running)
        except Exception as exc:
            log.warning("could not hand back running jobs: %s", exc)
        self.pool.shutdown(wait=False, cancel_futures=True)
        self._records.put(None)  # the recorder writes what is pending, then ends
        recorder = next((t for t in self._threads if t.name.endswith("_record_loop")), None)
        if recorder is not None:
            recorder.join(timeout=30)
        for client in self.clients.values():
            client.close()

    def wake(self) -> None:
        self._wake.set()

    def submit(self, job: Job) -> tuple[Job, bool]:
        """Queue ``job`` (see :meth:`Ledger.submit`); when a slot is free, it starts at once."""
        with self._lock:
            busy = len(self.local) >= self.capacity  # no slot can be free: nothing to claim
        if busy or self._stop.is_set():
            return self.ledger.submit(job)
        stored, duplicate, claimed = self.ledger.submit_and_claim(job, self.id, self.slots())
        for other in claimed:
            self._launch(other)
        return stored, duplicate

    def watch(self, job_id: str, notify: Callable[[], None]) -> Callable[[], None]:
        """Call ``notify`` (on a manager thread) whenever ``job_id`` changes here; returns the
        function that stops it."""
        with self._lock:
            self._watchers.setdefault(job_id, []).append(notify)

        def unwatch() -> None:
            with self._lock:
                rest = [n for n in self._watchers.get(job_id, []) if n is not notify]
                if rest:
                    self._watchers[job_id] = rest
                else:
                    self._watchers.pop(job_id, None)

        return unwatch

    def _changed(self, job_id: str) -> None:
        with self._lock:
            notify = list(self._watchers.get(job_id, ()))
        for n in notify:
            try:
                n()
            except Exception as exc:  # a waiter that went away must not stop a job
                log.debug("could not wake a waiter of %s: %s", job_id, exc)

    def configs(self) -> list[WorkerConfig]:
        return [c.cfg for c in self.clients.values()]

    def slots(self) -> list[SlotSpec]:
        return [
            SlotSpec(c.cfg.name, c.cfg.family, c.cfg.gpu_label, c.cfg.concurrency, self.models[n])
            for n, c in self.clients.items()
        ]

    # ------------------------------------------------------------------ loops
    def _dispatch_loop(self) -> None:
        while not self._stop.is_set():
            woken = self._wake.is_set()
            self._wake.clear()
            try:
                slots = self.slots()
                if woken or self.ledger.claimable(slots):  # a poll: look before locking
                    jobs = self.ledger.dispatch(self.id, slots)
                else:
                    jobs = []
            except Exception as exc:
                log.warning("dispatch failed: %s", exc)
                jobs = []
            for job in jobs:
                self._launch(job)
            self._wake.wait(self.poll_s)

    def _launch(self, job: Job) -> None:
        attempt = self._prepare(job)
        if attempt is None:
            return
        try:
            self.pool.submit(self._run, *attempt)
        except RuntimeError:  # the pool shut down in between: stop() handed the job back
            with self._lock:
                self.local.pop(job.id, None)

    def _prepare(self, job: Job) -> tuple[Job, WorkerClient, RunControl] | None:
        """Register a claimed job as running here (None: stopping, so it was handed back)."""
        client = self.clients[str(job.worker)]
        ctl = RunControl(
            deadline=job.deadline, on_chunk=self.sinks.get(job.id), timeout_s=self.request_timeout_s
        )
        with self._lock:
            stopping = self._stop.is_set()
            if not stopping:  # else stop() did not see it: hand it back here
                self.local[job.id] = _Local(job.attempt, ctl, client)
        if stopping:
            self.ledger.release(self.id, [job.id])
            return None
        self._changed(job.id)
        return job, client, ctl

    def _keeper_loop(self) -> None:
        period = max(0.02, min(self.poll_s * 3, self.ledger.lease_ttl_s / 4))
        last_sweep = time.monotonic()
        while not self._stop.wait(period):
            try:
                with self._lock:
                    mine = dict(self.local)
                flagged, requeued = self.ledger.keep(
                    self.id, self.host, os.getpid(), list(mine), pid_alive
                )
                for job_id in flagged:
                    entry = mine[job_id]
                    if not entry.ctl.cancel.is_set():
                        entry.ctl.cancel.set()
                        entry.client.interrupt()
                if requeued:
                    self._wake.set()
                self.ledger.maintain()
                if time.monotonic() - last_sweep > 600:
                    last_sweep = time.monotonic()
                    self.workspaces.sweep(self.workspace_max_age_s)
            except Exception as exc:
                log.warning("lease keeping failed: %s", exc)

    def _health_loop(self) -> None:
        while not self._stop.wait(self.health_interval_s):
            try:
                self.check_health()
            except Exception as exc:  # stop() closed the clients meanwhile, or the ledger failed
                if not self._stop.is_set():
                    log.warning("health check failed: %s", exc)

    def check_health(self) -> None:
        """Probe every worker; drain a failing one, re-admit one that answers again."""
        states = self.ledger.worker_states()
        for name, client in self.clients.items():
            try:
                found = client.models()
                ok, reason = True, None
                if not client.cfg.models:
                    self.models[name] = frozenset(found)
            except (WorkerFailed, KeyError, TypeError, ValueError) as exc:
                ok, reason = False, f"health check failed: {exc}"
            state = states.get(name)
            if state is None or state.healthy != ok:
                self.ledger.update_worker(name, healthy=ok, reason=reason)
                log.info("worker %s %s", name, "admitted" if ok else f"drained: {reason}")
                if ok:
                    self._wake.set()

    # ------------------------------------------------------------------ one attempt
    def _run(self, job: Job, client: WorkerClient, ctl: RunControl) -> None:
        """Run attempts on this thread: this one, then the next job its finish claimed (no
        hand-over to another thread between two jobs of a slot)."""
        attempt: tuple[Job, WorkerClient, RunControl] | None = (job, client, ctl)
        while attempt is not None:
            attempt = self._attempt(*attempt)

    def _attempt(
        self, job: Job, client: WorkerClient, ctl: RunControl
    ) -> tuple[Job, WorkerClient, RunControl] | None:
        attempt_dir: Path | None = None
        claimed: list[Job] | None = None  # what the finishing transaction claimed next
        try:
            out = client.run(job, ctl)
            result: dict[str, Any] = {"info": out.info}
            if job.family == "llm":
                result["text"] = out.text or ""
                result["verified"] = f"{len(result['text'])} characters; final chunk seen"
            else:
                p = job.params
                formats = verify_images(out.images, p["width"], p["height"], p["count"])
                attempt_dir = self.workspaces.attempt_dir(job.id)
                for i, blob in enumerate(out.images):
                    (attempt_dir / f"image-{i:02d}.{formats[i].lower()}").write_bytes(blob)
                if self.ledger.holds(job.id, job.attempt, self.id) is None:
                    return None
                final = self.workspaces.publish(attempt_dir, job.id)
                attempt_dir = None
                result["images"] = sorted(str(x) for x in final.iterdir())
                result["verified"] = (
                    f"{len(out.images)} image(s) decoded, each {p['width']}x{p['height']}"
                )
            if self.recorder is not None:
                result["memory_pending"] = True  # waiters wait for the note that follows
            elif self.unrecorded is not None:
                result["memory"] = self.unrecorded
            if self._stop.is_set():  # no new claims while stopping
                done = self.ledger.finish(job.id, job.attempt, self.id, "succeeded", result)
            else:
                done, claimed = self.ledger.finish_and_claim(
                    job.id, job.attempt, self.id, result, self.slots()
                )
            if done is not None and done.state == "succeeded" and self.recorder is not None:
                self._record(done)
        except Stopped as exc:
            state = "cancelled" if ctl.cancel.is_set() else "failed"
            if self.ledger.finish(job.id, job.attempt, self.id, state, error=str(exc)):
                self._tell(job, str(exc))
        except (WorkerFailed, VerificationFailed) as exc:
            if isinstance(exc, WorkerFailed):
                self.ledger.update_worker(str(job.worker), healthy=False, reason=str(exc))
            streamed = job.id in self.sinks
            after = self.ledger.retry(
                job.id, job.attempt, self.id, str(exc), self.slots(), self.max_attempts
            )
            log.info(
                "job %s on %s: %s -> %s (streamed=%s)", job.id, job.worker, exc, after, streamed
            )
            if after in ("failed", "cancelled"):
                self._tell(job, str(exc))
        except Exception as exc:  # a bug must not leave the job running forever
            log.exception("job %s crashed", job.id)
            self.ledger.finish(job.id, job.attempt, self.id, "failed", error=f"internal: {exc}")
            self._tell(job, f"internal: {exc}")
        finally:
            if attempt_dir is not None:
                self.workspaces.discard(attempt_dir)
            with self._lock:
                self.local.pop(job.id, None)
            if claimed is None:
                self._wake.set()  # the slot is free: the dispatcher fills it
            self._changed(job.id)
        following = None
        for other in claimed or ():
            if following is None:
                following = self._prepare(other)
            else:
                self._launch(other)
        return following

    def _tell(self, job: Job, error: str) -> None:
        """A streaming submitter learns at once that its job failed (it sees the final chunk
        of one that succeeded)."""
        sink = self.sinks.get(job.id)
        if sink is not None:
            sink({"error": error})

    def _record(self, job: Job) -> None:
        """Hand a succeeded job to the recorder thread (or, once it has ended, record it here)."""
        with self._lock:
            if not self._recorded:
                self._records.put(job)
                return
        self._write_records([job])

    def _record_loop(self) -> None:
        """Audit entry and memory of each succeeded job, in completion order; the notes of
        what is pending at once go into the ledger in one transaction."""
        while True:
            batch = [self._records.get()]
            while len(batch) < 64 and not self._records.empty():
                batch.append(self._records.get())
            if None in batch:  # stop(): take what is left; _record writes any later one itself
                with self._lock:
                    self._recorded = True
                    while not self._records.empty():
                        batch.append(self._records.get())
            self._write_records([job for job in batch if job is not None])
            if self._recorded:
                return

    def _write_records(self, jobs: list[Job]) -> None:
        if not jobs:
            return
        notes = {job.id: self._remember(job) for job in jobs}
        try:
            annotate(self.ledger, notes)
        except Exception as exc:
            log.warning("could not store whether %d jobs were remembered: %s", len(notes), exc)
        for job_id in notes:
            self._changed(job_id)

    def _remember(self, job: Job) -> dict[str, Any]:
        assert self.recorder is not None
        try:
            fields = self.recorder(job) or {}
        except Exception as exc:
            log.warning("job %s succeeded but was not recorded: %s", job.id, exc)
            fields = {"memory": {"remembered": False, "detail": f"not recorded: {exc}"}}
        return {**fields, "memory_pending": False}


def encode_init_image(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()
