"""The ledger's store for managers on several machines: one Redis (``PAI_GPU_JOBS_REDIS_URL``).

A ledger transaction holds one lock key (``SET NX PX``, released by compare-and-delete), so
dispatches on every machine are serialised exactly as SQLite's ``BEGIN IMMEDIATE`` serialises
them on one. A lock whose holder died expires by itself. Jobs are JSON strings; each client's
queue is a sorted set ordered by priority then submission; leases, fairness counters and worker
states are hashes, so every manager counts the same slots.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from pai_core.errors import BackendUnavailable
from pai_gpu_jobs.ledger import FINISHED, Job, Lease, WorkerState

__all__ = ["RedisStore"]

LOCK_TTL_MS = 10_000
RELEASE = """if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1]) else return 0 end"""


def _score(job: Job) -> float:
    return (1000 - job.priority) * 1e12 + job.seq


class RedisStore:
    """Ledger store in the Redis at ``url`` under ``prefix``."""

    def __init__(self, url: str, prefix: str = "pai:gpu_jobs", lock_wait_s: float = 30.0) -> None:
        import redis

        self.r: Any = redis.Redis.from_url(url, decode_responses=True, socket_timeout=10)
        self.p = prefix
        self.lock_wait_s = lock_wait_s
        self._local = threading.local()
        self._release = self.r.register_script(RELEASE)
        self._where = url.split("@")[-1]  # never the password
        try:
            self.r.ping()
        except redis.RedisError as exc:
            raise BackendUnavailable(
                f"cannot reach Redis at {self._where}: {exc}",
                hint="Start Redis or fix PAI_GPU_JOBS_REDIS_URL; nothing was queued.",
            ) from exc

    def describe(self) -> str:
        return f"redis:{self._where}"

    def k(self, *parts: str) -> str:
        return ":".join((self.p, *parts))

    @contextmanager
    def transaction(self) -> Iterator[None]:
        if getattr(self._local, "held", False):
            yield
            return
        token = secrets.token_hex(8)
        deadline = time.monotonic() + self.lock_wait_s
        delay = 0.0005
        while not self.r.set(self.k("lock"), token, nx=True, px=LOCK_TTL_MS):
            if time.monotonic() > deadline:
                raise BackendUnavailable(
                    f"the gpu_jobs lock in Redis {self._where} stayed taken",
                    hint="Another manager holds it; retry in a moment. Nothing was changed.",
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.01)
        self._local.held = True
        try:
            yield
        finally:
            self._local.held = False
            self._release(keys=[self.k("lock")], args=[token])

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Reads take no lock: each job is one key, written whole."""
        yield

    def maintain(self) -> None:
        """Nothing to do: Redis persists by itself."""

    def next_seq(self) -> int:
        return int(self.r.incr(self.k("seq")))

    def insert(self, job: Job) -> None:
        if job.idem:
            self.r.set(self.k("idem", job.client, job.idem), job.id)
        self.r.zadd(self.k("all"), {job.id: job.seq})
        self.save(job)

    def save(self, job: Job) -> None:
        pipe = self.r.pipeline(transaction=False)
        pipe.set(self.k("job", job.id), json.dumps(job.to_dict()))
        queue = self.k("q", job.client)
        if job.state == "queued":
            pipe.zadd(queue, {job.id: _score(job)})
            pipe.sadd(self.k("qclients"), job.client)
            if job.deadline is not None:
                pipe.zadd(self.k("deadlines"), {job.id: job.deadline})
        else:
            pipe.zrem(queue, job.id)
            pipe.zrem(self.k("deadlines"), job.id)
        if job.state in FINISHED and job.finished_at is not None:
            pipe.zadd(self.k("done"), {job.id: job.finished_at})
        pipe.execute()

    def load(self, job_id: str) -> Job | None:
        raw = self.r.get(self.k("job", job_id))
        return Job.from_dict(json.loads(raw)) if raw else None

    def _load_many(self, ids: Sequence[str]) -> list[Job]:
        return list(self._iter_many(ids))

    def _iter_many(self, ids: Sequence[str]) -> Iterator[Job]:
        raws = self.r.mget([self.k("job", i) for i in ids]) if ids else []
        return (Job.from_dict(json.loads(r)) for r in raws if r)

    def find_idem(self, client: str, key: str) -> str | None:
        found = self.r.get(self.k("idem", client, key))
        return str(found) if found else None

    def queued_clients(self) -> list[str]:
        clients = sorted(self.r.smembers(self.k("qclients")))
        out = []
        for client in clients:
            if self.r.zcard(self.k("q", client)):
                out.append(client)
            else:
                self.r.srem(self.k("qclients"), client)
        return out

    def heads(self, client: str, limit: int) -> Iterator[Job]:
        return self._iter_many(self.r.zrange(self.k("q", client), 0, limit - 1))

    def leases(self) -> list[Lease]:
        return [Lease(**json.loads(v)) for v in self.r.hvals(self.k("leases"))]

    def put_lease(self, lease: Lease) -> None:
        data = {
            "job_id": lease.job_id,
            "worker": lease.worker,
            "manager": lease.manager,
            "client": lease.client,
            "expires_at": lease.expires_at,
        }
        self.r.hset(self.k("leases"), lease.job_id, json.dumps(data))

    def drop_lease(self, job_id: str) -> None:
        self.r.hdel(self.k("leases"), job_id)

    def renew(self, manager: str, job_ids: Sequence[str], expires_at: float) -> None:
        for lease in self.leases():
            if lease.job_id in job_ids and lease.manager == manager:
                self.put_lease(Lease(lease.job_id, lease.worker, manager, lease.client, expires_at))

    def served(self, clients: Sequence[str]) -> dict[str, int]:
        if not clients:
            return {}
        values = self.r.hmget(self.k("served"), list(clients))
        return {c: int(v) for c, v in zip(clients, values, strict=True) if v is not None}

    def set_served(self, client: str, seq: int) -> None:
        self.r.hset(self.k("served"), client, seq)

    def worker_states(self) -> dict[str, WorkerState]:
        rows = self.r.hgetall(self.k("workers"))
        return {n: WorkerState(**json.loads(v)) for n, v in rows.items()}

    def put_worker_state(self, name: str, state: WorkerState) -> None:
        data = {
            "drained": state.drained,
            "healthy": state.healthy,
            "reason": state.reason,
            "last_assigned": state.last_assigned,
        }
        self.r.hset(self.k("workers"), name, json.dumps(data))

    def heartbeat(self, manager: str, host: str, pid: int, at: float) -> None:
        self.r.hset(self.k("managers"), manager, json.dumps([host, pid, at]))

    def managers(self) -> list[tuple[str, str, int, float]]:
        rows = self.r.hgetall(self.k("managers"))
        out = []
        for m, v in rows.items():
            host, pid, at = json.loads(v)
            out.append((m, str(host), int(pid), float(at)))
        return out

    def drop_manager(self, manager: str) -> None:
        self.r.hdel(self.k("managers"), manager)

    def queued_deadlines(self, now: float) -> list[str]:
        return list(self.r.zrangebyscore(self.k("deadlines"), "-inf", now))

    def _queued(self) -> list[Job]:
        out: list[Job] = []
        for client in self.queued_clients():
            out.extend(self._load_many(self.r.zrange(self.k("q", client), 0, -1)))
        return out

    def queued_counts(self) -> dict[tuple[str, str], int]:
        counts: dict[tuple[str, str], int] = {}
        for job in self._queued():
            key = (job.family, job.model)
            counts[key] = counts.get(key, 0) + 1
        return counts

    def finished_since(self, since: float) -> list[tuple[str, float]]:
        ids = self.r.zrangebyscore(self.k("done"), since, "+inf")
        return [
            (str(j.worker), float(j.finished_at or 0))
            for j in self._load_many(ids)
            if j.state == "succeeded"
        ]

    def select(
        self, filters: dict[str, str | None], limit: int, offset: int
    ) -> tuple[list[Job], int]:
        ids = self.r.zrevrange(self.k("all"), 0, -1)
        wanted = {k: v for k, v in filters.items() if v is not None}
        matching = [j for j in self._load_many(ids) if _matches(j, wanted)]
        return matching[offset : offset + limit], len(matching)

    def pinned_queued(self, manager: str) -> list[str]:
        return [j.id for j in self._queued() if j.pinned == manager]

    def cancel_requested(self, job_ids: Sequence[str]) -> list[str]:
        return [j.id for j in self._iter_many(job_ids) if j.cancel]


def _matches(job: Job, wanted: dict[str, Any]) -> bool:
    data = job.to_dict()
    return all(data.get(k) == v for k, v in wanted.items())
