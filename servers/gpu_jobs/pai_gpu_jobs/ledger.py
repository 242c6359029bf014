"""The durable job ledger: one fair queue, worker-slot leases, and recovery, over two stores.

:class:`Ledger` holds the scheduling rules once; a store gives it primitive reads and writes
inside one serialised transaction (:class:`pai_gpu_jobs.sqlite_store.SqliteStore`:
``BEGIN IMMEDIATE`` on a shared file; :class:`pai_gpu_jobs.redis_store.RedisStore`: a lock with
expiry in one Redis). Every manager process runs the same rules against the same store, so:

- a worker's concurrency holds across processes: a job runs only while it holds a lease on a
  slot of its worker, and slots are counted inside the transaction that takes one;
- fair share: the next job goes to the client with the fewest running jobs, then the one
  served longest ago; priority (then age) orders jobs within a client;
- placement: only admitted workers that have the job's model; the least-loaded, then the one
  assigned longest ago (round-robin between equals);
- a lease not renewed in time (its manager died) puts the job back in the queue; a result is
  accepted only from the attempt that holds the lease, so one idempotency key has one result.

Writes of one process queue on a process-local lock before they take the store's lock, so the
threads of one manager never spin on SQLite's busy handler (which sleeps in 1-100 ms steps)
against each other; reads (status, listings, statistics) take no write lock at all.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

__all__ = ["FINISHED", "Job", "Ledger", "Lease", "SlotSpec", "Store", "WorkerState"]

FINISHED = ("succeeded", "failed", "cancelled")
HEADS = 32


@dataclass
class Job:
    """One job as stored (params and result are JSON-safe dicts)."""

    id: str
    kind: str
    family: str
    client: str
    model: str
    params: dict[str, Any]
    priority: int = 0
    idem: str | None = None
    deadline: float | None = None
    pinned: str | None = None
    state: str = "queued"
    seq: int = 0
    attempt: int = 0
    worker: str | None = None
    gpu: str | None = None
    avoid: list[str] = field(default_factory=list)
    submitted_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    cancel: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A shallow dict of the fields (JSON-safe: params and result already are)."""
        return {name: getattr(self, name) for name in _JOB_FIELDS}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        return cls(**data)


_JOB_FIELDS = tuple(f.name for f in fields(Job))


@dataclass(frozen=True, slots=True)
class Lease:
    job_id: str
    worker: str
    manager: str
    client: str
    expires_at: float


@dataclass
class WorkerState:
    """What every manager must agree on about a worker (kept in the store)."""

    drained: bool = False
    healthy: bool = True
    reason: str | None = None
    last_assigned: int = 0


@dataclass(frozen=True, slots=True)
class SlotSpec:
    """A configured worker as the scheduler sees it."""

    name: str
    family: str
    gpu: str
    concurrency: int
    models: frozenset[str]

    def serves(self, job: Job) -> bool:
        if self.family != job.family:
            return False
        return (job.model == "" and job.family == "image") or job.model in self.models


class Store(Protocol):
    """Primitive reads and writes; every call runs inside ``transaction`` (or, for reads only,
    ``reading``: a consistent view that does not block writers)."""

    def describe(self) -> str: ...
    def transaction(self) -> AbstractContextManager[None]: ...
    def reading(self) -> AbstractContextManager[None]: ...
    def maintain(self) -> None: ...
    def next_seq(self) -> int: ...
    def insert(self, job: Job) -> None: ...
    def save(self, job: Job) -> None: ...
    def load(self, job_id: str) -> Job | None: ...
    def find_idem(self, client: str, key: str) -> str | None: ...
    def queued_clients(self) -> list[str]: ...
    def heads(self, client: str, limit: int) -> Iterable[Job]: ...
    def leases(self) -> list[Lease]: ...
    def put_lease(self, lease: Lease) -> None: ...
    def drop_lease(self, job_id: str) -> None: ...
    def renew(self, manager: str, job_ids: Sequence[str], expires_at: float) -> None: ...
    def served(self, clients: Sequence[str]) -> dict[str, int]: ...
    def set_served(self, client: str, seq: int) -> None: ...
    def worker_states(self) -> dict[str, WorkerState]: ...
    def put_worker_state(self, name: str, state: WorkerState) -> None: ...
    def heartbeat(self, manager: str, host: str, pid: int, at: float) -> None: ...
    def managers(self) -> list[tuple[str, str, int, float]]: ...
    def drop_manager(self, manager: str) -> None: ...
    def queued_deadlines(self, now: float) -> list[str]: ...
    def queued_counts(self) -> dict[tuple[str, str], int]: ...
    def finished_since(self, since: float) -> list[tuple[str, float]]: ...
    def select(
        self, filters: dict[str, str | None], limit: int, offset: int
    ) -> tuple[list[Job], int]: ...
    def pinned_queued(self, manager: str) -> list[str]: ...
    def cancel_requested(self, job_ids: Sequence[str]) -> list[str]: ...


class Ledger:
    """The scheduling rules over a :class:`Store` (used by every manager process)."""

    def __init__(self, store: Store, *, lease_ttl_s: float = 15.0) -> None:
        self.store = store
        self.lease_ttl_s = lease_ttl_s
        self._mutex = threading.RLock()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One write transaction: this process's lock first, then the store's."""
        with self._mutex, self.store.transaction():
            yield

    def describe(self) -> str:
        return self.store.describe()

    # ------------------------------------------------------------------ submit and read
    def submit(self, job: Job) -> tuple[Job, bool]:
        """Queue ``job``; with an idempotency key already used by its client, return that one."""
        with self.transaction():
            if job.idem:
                existing = self.store.find_idem(job.client, job.idem)
                if existing:
                    found = self.store.load(existing)
                    assert found is not None
                    return found, True
            job.id = job.id or uuid.uuid4().hex[:16]
            job.seq = self.store.next_seq()
            job.submitted_at = job.submitted_at or time.time()
            self.store.insert(job)
            return job, False

    def submit_and_claim(
        self, job: Job, manager: str, slots: Sequence[SlotSpec]
    ) -> tuple[Job, bool, list[Job]]:
        """``submit``, then ``dispatch`` in the same transaction: a job that finds a free slot
        starts at once, without a second transaction or a hop to the dispatcher."""
        with self.transaction():
            stored, duplicate = self.submit(job)
            return stored, duplicate, self.dispatch(manager, slots)

    def get(self, job_id: str) -> Job | None:
        with self.store.reading():
            return self.store.load(job_id)

    def select(
        self, filters: dict[str, str | None], limit: int = 50, offset: int = 0
    ) -> tuple[list[Job], int]:
        with self.store.reading():
            return self.store.select(filters, limit, offset)

    # ------------------------------------------------------------------ dispatch
    def claimable(self, slots: Sequence[SlotSpec], now: float | None = None) -> bool:
        """Whether a ``dispatch`` could claim or requeue anything now: a read that takes no
        write lock, so a manager with nothing to do does not queue behind busy ones."""
        now = time.time() if now is None else now
        with self.store.reading():
            leases = self.store.leases()
            if any(lease.expires_at <= now for lease in leases):
                return True
            running = Counter(lease.worker for lease in leases)
            if not _free(slots, self.store.worker_states(), running):
                return False
            return bool(self.store.queued_clients())

    def dispatch(
        self, manager: str, slots: Sequence[SlotSpec], now: float | None = None, limit: int = 64
    ) -> list[Job]:
        """Claim up to ``limit`` jobs for ``manager`` onto free admitted slots (one transaction)."""
        now = time.time() if now is None else now
        out: list[Job] = []
        with self.transaction():
            leases = self.store.leases()
            if any(lease.expires_at <= now for lease in leases):
                self._requeue_expired(now, leases)
                leases = [lease for lease in leases if lease.expires_at > now]
            states = self.store.worker_states()
            running = Counter(lease.worker for lease in leases)
            free = _free(slots, states, running)
            if not free:
                return out
            clients = self.store.queued_clients()
            if not clients:
                return out
            by_client = Counter(lease.client for lease in leases)
            served = self.store.served(clients)
            gpu_running = Counter({s.gpu: 0 for s in slots})
            for s in slots:
                gpu_running[s.gpu] += running[s.name]
            spec = {s.name: s for s in slots}
            order = sorted(clients, key=lambda c: (by_client[c], served.get(c, 0), c))
            while free and order and len(out) < limit:
                client = order.pop(0)
                picked = self._pick(client, free, spec, states, running, gpu_running, manager, now)
                if picked is None:
                    continue  # nothing of this client fits a free slot now
                job, slot = picked
                seq = self.store.next_seq()
                job.state, job.attempt = "running", job.attempt + 1
                job.worker, job.gpu, job.started_at = slot.name, slot.gpu, now
                self.store.save(job)
                self.store.put_lease(
                    Lease(job.id, slot.name, manager, job.client, now + self.lease_ttl_s)
                )
                self.store.set_served(client, seq)
                state = states.setdefault(slot.name, WorkerState())
                state.last_assigned = seq
                self.store.put_worker_state(slot.name, state)
                running[slot.name] += 1
                gpu_running[slot.gpu] += 1
                free[slot.name] -= 1
                if free[slot.name] == 0:
                    del free[slot.name]
                by_client[client] += 1
                served[client] = seq
                order.append(client)
                order.sort(key=lambda c: (by_client[c], served.get(c, 0), c))
                out.append(job)
        return out

    def _pick(
        self,
        client: str,
        free: dict[str, int],
        spec: dict[str, SlotSpec],
        states: dict[str, WorkerState],
        running: Counter[str],
        gpu_running: Counter[str],
        manager: str,
        now: float,
    ) -> tuple[Job, SlotSpec] | None:
        for job in self.store.heads(client, HEADS):
            if job.pinned and job.pinned != manager:
                continue
            if job.deadline is not None and job.deadline <= now:
                self._close(job, "failed", None, "deadline passed before a worker was free", now)
                continue
            fits = [spec[name] for name in free if spec[name].serves(job) and name not in job.avoid]
            if not fits:
                continue
            best = min(
                fits,
                key=lambda s: (
                    running[s.name] / s.concurrency,
                    gpu_running[s.gpu],
                    states.get(s.name, WorkerState()).last_assigned,
                    s.name,
                ),
            )
            return job, best
        return None

    # ------------------------------------------------------------------ running jobs
    def renew(self, manager: str, job_ids: Sequence[str], now: float | None = None) -> None:
        if not job_ids:
            return
        now = time.time() if now is None else now
        with self.transaction():
            self.store.renew(manager, job_ids, now + self.lease_ttl_s)

    def holds(self, job_id: str, attempt: int, manager: str) -> Job | None:
        """The job if ``manager``'s attempt still holds its lease (else None)."""
        with self.store.reading():
            return self._held(job_id, attempt, manager)

    def _held(self, job_id: str, attempt: int, manager: str) -> Job | None:
        job = self.store.load(job_id)
        if job is None or job.state != "running" or job.attempt != attempt:
            return None
        lease = next((x for x in self.store.leases() if x.job_id == job_id), None)
        if lease is None or lease.manager != manager:
            return None
        return job

    def finish(
        self,
        job_id: str,
        attempt: int,
        manager: str,
        state: str,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> Job | None:
        """Record the attempt's outcome and return the job as stored; None when this attempt
        no longer owns the job."""
        with self.transaction():
            job = self._held(job_id, attempt, manager)
            if job is None:
                return None
            if job.cancel and state == "succeeded":
                state, result, error = "cancelled", None, "cancelled while running"
            self._close(job, state, result, error, time.time())
            return job

    def finish_and_claim(
        self,
        job_id: str,
        attempt: int,
        manager: str,
        result: dict[str, Any],
        slots: Sequence[SlotSpec],
    ) -> tuple[Job | None, list[Job]]:
        """A succeeded attempt's ``finish``, then ``dispatch`` in the same transaction, so the
        slot it frees (or any other) takes its next job at once."""
        with self.transaction():
            done = self.finish(job_id, attempt, manager, "succeeded", result)
            return done, self.dispatch(manager, slots)

    def retry(
        self,
        job_id: str,
        attempt: int,
        manager: str,
        error: str,
        slots: Sequence[SlotSpec],
        max_attempts: int,
    ) -> str | None:
        """After a worker failed the attempt: queue it for another worker, or fail it.

        Returns the job's new state, or None when this attempt no longer owns the job.
        """
        with self.transaction():
            job = self._held(job_id, attempt, manager)
            if job is None:
                return None
            failed_on = job.worker
            avoid = [*job.avoid, failed_on] if failed_on else list(job.avoid)
            others = [s for s in slots if s.serves(job) and s.name not in avoid]
            if job.cancel:
                self._close(job, "cancelled", None, "cancelled while running", time.time())
                return "cancelled"
            if job.attempt >= max_attempts or not others or job.pinned:
                tail = "" if others or job.pinned else "; no other worker has its model"
                self._close(job, "failed", None, f"{error}{tail}", time.time())
                return "failed"
            job.avoid, job.error = avoid, f"attempt {job.attempt} on {failed_on}: {error}"
            job.state, job.worker, job.gpu = "queued", None, None
            self.store.drop_lease(job.id)
            self.store.save(job)
            return "queued"

    def cancel(self, job_id: str) -> Job | None:
        """Cancel a queued job at once; flag a running one (its manager stops it)."""
        with self.transaction():
            job = self.store.load(job_id)
            if job is None:
                return None
            if job.state == "queued":
                self._close(job, "cancelled", None, "cancelled before it started", time.time())
            elif job.state == "running":
                job.cancel = True
                self.store.save(job)
            return job

    def _close(
        self,
        job: Job,
        state: str,
        result: dict[str, Any] | None,
        error: str | None,
        now: float,
    ) -> None:
        job.state, job.finished_at = state, now
        job.result = result
        if error is not None or state == "succeeded":
            job.error = error
        self.store.drop_lease(job.id)
        self.store.save(job)

    # ------------------------------------------------------------------ recovery
    def _requeue_expired(self, now: float, leases: Sequence[Lease] | None = None) -> list[str]:
        back = []
        for lease in self.store.leases() if leases is None else leases:
            if lease.expires_at > now:
                continue
            job = self.store.load(lease.job_id)
            self.store.drop_lease(lease.job_id)
            if job is None or job.state != "running":
                continue
            if job.cancel:
                self._close(job, "cancelled", None, "cancelled; its manager went away", now)
            elif job.pinned:
                self._close(job, "failed", None, "the proxy that submitted it went away", now)
            else:
                job.state, job.worker, job.gpu = "queued", None, None
                job.error = f"attempt {job.attempt}: its manager stopped renewing the lease"
                self.store.save(job)
                back.append(job.id)
        return back

    def recover(self, host: str, alive: Any, now: float | None = None) -> list[str]:
        """Requeue jobs of managers that are gone: expired leases anywhere, and leases of dead
        processes on this ``host`` at once (``alive(pid)`` says whether a PID lives)."""
        now = time.time() if now is None else now
        with self.transaction():
            dead = [m for m, h, pid, _ in self.store.managers() if h == host and not alive(pid)]
            if dead:
                leases = [x for x in self.store.leases() if x.manager in dead]
                held = [x.job_id for x in leases]
                for m in dead:
                    self.store.renew(m, held, 0.0)
                    for job_id in self.store.pinned_queued(m):
                        job = self.store.load(job_id)
                        if job is not None:
                            self._close(job, "failed", None, "its submitter went away", now)
                    self.store.drop_manager(m)
            back = self._requeue_expired(now)
            for job_id in self.store.queued_deadlines(now):
                job = self.store.load(job_id)
                if job is not None:
                    self._close(
                        job, "failed", None, "deadline passed before a worker was free", now
                    )
            return back

    def keep(
        self, manager: str, host: str, pid: int, job_ids: Sequence[str], alive: Any
    ) -> tuple[list[str], list[str]]:
        """A manager's periodic upkeep in one transaction: heartbeat, renew its leases, recover
        what dead managers left. Returns (its jobs someone asked to cancel, jobs requeued)."""
        now = time.time()
        with self.transaction():
            self.store.heartbeat(manager, host, pid, now)
            if job_ids:
                self.store.renew(manager, job_ids, now + self.lease_ttl_s)
            flagged = self.store.cancel_requested(job_ids) if job_ids else []
            return flagged, self.recover(host, alive, now)

    def maintain(self) -> None:
        """The store's housekeeping, outside any transaction (see the stores)."""
        self.store.maintain()

    def release(self, manager: str, job_ids: Sequence[str]) -> None:
        """A manager stopping hands its running jobs back at once."""
        with self.transaction():
            self.store.renew(manager, job_ids, 0.0)
            self._requeue_expired(time.time())
            self.store.drop_manager(manager)

    def heartbeat(self, manager: str, host: str, pid: int) -> None:
        with self.transaction():
            self.store.heartbeat(manager, host, pid, time.time())

    # ------------------------------------------------------------------ workers and stats
    def worker_states(self) -> dict[str, WorkerState]:
        with self.store.reading():
            return self.store.worker_states()

    def update_worker(self, name: str, **changes: Any) -> WorkerState:
        with self.transaction():
            state = self.store.worker_states().get(name, WorkerState())
            for key, value in changes.items():
                setattr(state, key, value)
            self.store.put_worker_state(name, state)
            return state

    def snapshot(self, since: float) -> Snapshot:
        with self.store.reading():
            return Snapshot(
                leases=self.store.leases(),
                queued=self.store.queued_counts(),
                finished=self.store.finished_since(since),
                states=self.store.worker_states(),
            )


@dataclass
class Snapshot:
    leases: list[Lease]
    queued: dict[tuple[str, str], int]
    finished: list[tuple[str, float]]
    states: dict[str, WorkerState]

    def running(self) -> Counter[str]:
        return Counter(lease.worker for lease in self.leases)


def _admitted(state: WorkerState | None) -> bool:
    return state is None or (state.healthy and not state.drained)


def _free(
    slots: Sequence[SlotSpec], states: dict[str, WorkerState], running: Counter[str]
) -> dict[str, int]:
    """Free places per admitted worker."""
    return {
        s.name: s.concurrency - running[s.name]
        for s in slots
        if _admitted(states.get(s.name)) and s.concurrency > running[s.name]
    }


def iter_chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def annotate(ledger: Ledger, updates: dict[str, dict[str, Any]]) -> None:
    """Merge each job's fields into its result (e.g. whether it was remembered), in one
    transaction for all of them."""
    with ledger.transaction():
        for job_id, extra in updates.items():
            job = ledger.store.load(job_id)
            if job is not None:
                job.result = {**(job.result or {}), **extra}
                ledger.store.save(job)
