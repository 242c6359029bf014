"""What the tools do: validate a request, queue it, and report jobs, workers and GPUs.

The service holds no scheduling logic of its own (that is :mod:`pai_gpu_jobs.ledger`) and
runs nothing itself (that is :mod:`pai_gpu_jobs.manager`); it turns tool arguments into jobs
with clear errors, and ledger rows into the tools' result models.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio

from pai_core.audit import AuditLog
from pai_core.errors import Conflict, InvalidInput, NotFound
from pai_gpu_jobs.ledger import FINISHED, Job
from pai_gpu_jobs.manager import Manager, encode_init_image
from pai_gpu_jobs.models import (
    TIERS,
    CleanupResult,
    GpuStatus,
    GpuView,
    JobList,
    JobView,
    Message,
    Submitted,
    WorkerList,
    WorkerView,
)
from pai_gpu_jobs.nvml import Nvml

__all__ = ["GpuJobsService", "Limits"]

Progress = Callable[[float, float, str], Awaitable[None]]
LOOPBACK = ("127.", "localhost", "[::1]")


class Limits:
    def __init__(self, max_images: int = 16, max_side: int = 2048, default_client: str = "mcp"):
        self.max_images = max_images
        self.max_side = max_side
        self.default_client = default_client


class GpuJobsService:
    def __init__(
        self, manager: Manager, audit: AuditLog, limits: Limits, nvml: Nvml | None = None
    ) -> None:
        self.manager = manager
        self.ledger = manager.ledger
        self.audit = audit
        self.limits = limits
        self.nvml = nvml or Nvml()

    # ------------------------------------------------------------------ submit
    def _common(
        self, client: str | None, priority: int, deadline_s: float | None, key: str | None
    ) -> dict[str, Any]:
        if not -100 <= priority <= 100:
            raise InvalidInput("priority must be between -100 and 100", field="priority")
        if deadline_s is not None and deadline_s <= 0:
            raise InvalidInput(
                "deadline_s must be a positive number of seconds", field="deadline_s"
            )
        if key is not None and not 1 <= len(key) <= 200:
            raise InvalidInput("idempotency_key must be 1-200 characters", field="idempotency_key")
        name = client or self.limits.default_client
        if not 1 <= len(name) <= 100:
            raise InvalidInput("client must be 1-100 characters", field="client")
        return {
            "client": name,
            "priority": priority,
            "deadline": time.time() + deadline_s if deadline_s else None,
            "idem": key,
        }

    def _known(self, family: str) -> set[str]:
        return {
            m
            for c in self.manager.configs()
            if c.family == family
            for m in self.manager.models[c.name]
        }

    def submit_llm(
        self,
        model: str,
        *,
        prompt: str | None = None,
        messages: list[Message] | None = None,
        system: str | None = None,
        options: dict[str, Any] | None = None,
        client: str | None = None,
        priority: int = 0,
        deadline_s: float | None = None,
        idempotency_key: str | None = None,
        pinned: str | None = None,
        sink: Callable[[dict[str, Any]], None] | None = None,
    ) -> Submitted:
        common = self._common(client, priority, deadline_s, idempotency_key)
        known = self._known("llm")
        if model not in known:
            raise InvalidInput(
                f"no Ollama worker has the model {model!r} (known: {sorted(known) or 'none'})",
                field="model",
            )
        if (prompt is None) == (messages is None):
            raise InvalidInput("give either prompt (generate) or messages (chat)", field="prompt")
        if prompt is not None and not prompt.strip():
            raise InvalidInput("prompt is empty", field="prompt")
        if messages is not None and not messages:
            raise InvalidInput("messages is empty", field="messages")
        params: dict[str, Any] = {"options": options or {}}
        if messages is not None:
            kind = "llm.chat"
            params["messages"] = [m.model_dump() for m in messages]
        else:
            kind, params["prompt"], params["system"] = "llm.generate", prompt, system
        job = Job(
            id="", kind=kind, family="llm", model=model, params=params, pinned=pinned, **common
        )
        return self._queue(job, sink)

    def submit_image(
        self,
        prompt: str,
        *,
        model: str | None = None,
        tier: str = "standard",
        steps: int | None = None,
        width: int = 512,
        height: int = 512,
        count: int = 1,
        seed: int | None = None,
        negative_prompt: str = "",
        init_image: str | None = None,
        denoise: float = 0.75,
        client: str | None = None,
        priority: int = 0,
        deadline_s: float | None = None,
        idempotency_key: str | None = None,
    ) -> Submitted:
        common = self._common(client, priority, deadline_s, idempotency_key)
        if tier not in TIERS:
            raise InvalidInput(
                f"unknown tier {tier!r}: use draft (20 steps), standard (50) or high (100)",
                field="tier",
            )
        if steps is not None and not 1 <= steps <= 500:
            raise InvalidInput("steps must be between 1 and 500", field="steps")
        for name, side in (("width", width), ("height", height)):
            if not 64 <= side <= self.limits.max_side or side % 8:
                raise InvalidInput(
                    f"{name} must be a multiple of 8 from 64 to {self.limits.max_side}, not {side}",
                    field=name,
                )
        if not 1 <= count <= self.limits.max_images:
            raise InvalidInput(
                f"count must be from 1 to {self.limits.max_images}, not {count}", field="count"
            )
        if not prompt.strip():
            raise InvalidInput("prompt is empty", field="prompt")
        known = self._known("image")
        if model is not None and model not in known:
            raise InvalidInput(
                f"no image worker has the model {model!r} (known: {sorted(known) or 'none'})",
                field="model",
            )
        if not any(c.family == "image" for c in self.manager.configs()):
            raise InvalidInput("no image worker is configured", field="model")
        params: dict[str, Any] = {
            "prompt": prompt,
            "negative_prompt": negative_prompt,
            "tier": tier,
            "steps": steps or TIERS[tier],
            "width": width,
            "height": height,
            "count": count,
            "seed": seed if seed is not None else -1,
        }
        kind = "image.txt2img"
        if init_image is not None:
            path = Path(init_image)
            if not path.is_file():
                raise InvalidInput(f"init_image {init_image} is not a file", field="init_image")
            kind, params["init_image_b64"], params["denoise"] = (
                "image.img2img",
                encode_init_image(path),
                denoise,
            )
            if not any(c.kind == "a1111" for c in self.manager.configs()):
                raise InvalidInput("img2img needs an AUTOMATIC1111 worker", field="init_image")
        job = Job(id="", kind=kind, family="image", model=model or "", params=params, **common)
        return self._queue(job)

    def _queue(self, job: Job, sink: Callable[[dict[str, Any]], None] | None = None) -> Submitted:
        self.manager.start()
        if sink is not None:  # a pinned job: only this manager runs it, so the id is ours
            job.id = uuid.uuid4().hex[:16]
            self.manager.sinks[job.id] = sink
        stored, duplicate = self.manager.submit(job)
        return Submitted(job_id=stored.id, state=stored.state, duplicate=duplicate)

    # ------------------------------------------------------------------ jobs
    def _job(self, job_id: str) -> Job:
        job = self.ledger.get(job_id)
        if job is None:
            raise NotFound(f"no job {job_id!r}", hint="List jobs with list_jobs; nothing changed.")
        return job

    def status(self, job_id: str) -> JobView:
        return view(self._job(job_id))

    async def wait(
        self, job_id: str, timeout_s: float, progress: Progress | None = None
    ) -> JobView:
        """Wait until the job finishes or ``timeout_s`` passes (then return it as it is).

        Woken at once when this process starts or ends the job; a job another process runs
        is read from the ledger at growing intervals (20 ms up to 250 ms)."""
        self.manager.start()
        loop = asyncio.get_running_loop()
        changed = asyncio.Event()

        def wake() -> None:  # on a manager thread
            loop.call_soon_threadsafe(changed.set)

        unwatch = self.manager.watch(job_id, wake)
        try:
            return await self._wait(job_id, timeout_s, progress, changed)
        finally:
            unwatch()

    async def _wait(
        self, job_id: str, timeout_s: float, progress: Progress | None, changed: asyncio.Event
    ) -> JobView:
        deadline = time.monotonic() + timeout_s
        seen = ""
        delay = 0.02
        while True:
            changed.clear()  # a change from here on wakes the wait below
            job = await anyio.to_thread.run_sync(self._job, job_id)
            if progress is not None and job.state != seen:
                seen = job.state
                step = {"queued": 0.0, "running": 1.0}.get(job.state, 2.0)
                where = f" on {job.worker}" if job.worker else ""
                await progress(step, 2.0, f"{job.state}{where}")
            settled = job.state in FINISHED and not (job.result or {}).get("memory_pending")
            left = deadline - time.monotonic()
            if settled or left <= 0:
                return view(job)
            with anyio.move_on_after(min(delay, left)):
                await changed.wait()
            delay = min(delay * 1.5, 0.25)

    def cancel(self, job_id: str) -> JobView:
        job = self.ledger.cancel(job_id)
        if job is None:
            raise NotFound(f"no job {job_id!r}", hint="List jobs with list_jobs; nothing changed.")
        if job.state in ("succeeded", "failed"):
            raise Conflict(f"job {job_id} already {job.state}", hint="Nothing was changed.")
        self.audit.append("gpu_jobs.cancel", job=job_id, client=job.client, state=job.state)
        return view(job)

    def list(
        self,
        state: str | None,
        client: str | None,
        kind: str | None,
        worker: str | None,
        limit: int,
        offset: int,
    ) -> JobList:
        filters = {"state": state, "client": client, "kind": kind, "worker": worker}
        jobs, total = self.ledger.select(filters, limit, offset)
        return JobList(jobs=[view(j) for j in jobs], total=total)

    def cleanup(self, job_id: str) -> CleanupResult:
        job = self._job(job_id)
        if job.state not in FINISHED:
            raise Conflict(
                f"job {job_id} is {job.state}",
                hint="Cancel it or wait for it; nothing was removed.",
            )
        removed = self.manager.workspaces.remove(job_id)
        entry = self.audit.append("gpu_jobs.cleanup", job=job_id, removed=len(removed))
        return CleanupResult(job_id=job_id, removed=removed, audit_id=int(entry["seq"]))

    # ------------------------------------------------------------------ workers and GPUs
    def workers(self) -> WorkerList:
        snap = self.ledger.snapshot(time.time())
        running = snap.running()
        out = []
        for cfg in self.manager.configs():
            state = snap.states.get(cfg.name)
            healthy = state.healthy if state else True
            drained = state.drained if state else False
            reason = None
            if drained:
                reason = "drained by drain_worker"
            elif not healthy:
                reason = state.reason if state else None
            out.append(
                WorkerView(
                    name=cfg.name,
                    kind=cfg.kind,
                    url=cfg.url,
                    gpu=cfg.gpu_label,
                    concurrency=cfg.concurrency,
                    running=running[cfg.name],
                    models=sorted(self.manager.models[cfg.name]),
                    healthy=healthy,
                    drained=drained,
                    admitted=healthy and not drained,
                    reason=reason,
                )
            )
        return WorkerList(workers=out)

    def set_drained(self, name: str, drained: bool) -> WorkerView:
        if name not in self.manager.clients:
            known = ", ".join(self.manager.clients) or "none"
            raise NotFound(f"no worker {name!r} (known: {known})", hint="Nothing was changed.")
        self.ledger.update_worker(name, drained=drained)
        self.audit.append("gpu_jobs.drain" if drained else "gpu_jobs.undrain", worker=name)
        self.manager.wake()
        return next(w for w in self.workers().workers if w.name == name)

    def gpu_status(self) -> GpuStatus:
        window = 60.0
        snap = self.ledger.snapshot(time.time() - window)
        running = snap.running()
        finished = Counter(w for w, _ in snap.finished)
        devices = self.nvml.devices()
        gpus: dict[str, GpuView] = {}
        for cfg in self.manager.configs():
            g = gpus.setdefault(
                cfg.gpu_label,
                GpuView(
                    gpu=cfg.gpu_label,
                    workers=[],
                    running=0,
                    capacity=0,
                    queue_depth=0,
                    finished_last_60s=0,
                    throughput_per_min=0.0,
                ),
            )
            g.workers.append(cfg.name)
            g.running += running[cfg.name]
            g.capacity += cfg.concurrency
            g.finished_last_60s += finished[cfg.name]
            try:
                g.reported[cfg.name] = self.manager.clients[cfg.name].report()
            except Exception as exc:
                g.reported[cfg.name] = f"unavailable: {exc}"
            local = cfg.url.split("//", 1)[-1].startswith(LOOPBACK)
            if local and cfg.gpu_label in devices:
                g.nvml = devices[cfg.gpu_label]
            elif not local:
                g.nvml = "unavailable: the worker is not on this machine"
            else:
                g.nvml = f"{self.nvml.status()}" if not devices else "unavailable: no such index"
        for g in gpus.values():
            g.throughput_per_min = round(g.finished_last_60s * 60.0 / window, 2)
            models = {
                (c.family, m)
                for c in self.manager.configs()
                if c.gpu_label == g.gpu
                for m in self.manager.models[c.name]
            }
            families = {c.family for c in self.manager.configs() if c.gpu_label == g.gpu}
            g.queue_depth = sum(
                n
                for (fam, model), n in snap.queued.items()
                if (fam, model) in models or (fam == "image" and model == "" and fam in families)
            )
        return GpuStatus(
            gpus=list(gpus.values()),
            queued=sum(snap.queued.values()),
            running=sum(running.values()),
            ledger=self.ledger.describe(),
            nvml=self.nvml.status(),
        )


def view(job: Job) -> JobView:
    result = job.result or {}
    p = job.params
    return JobView(
        job_id=job.id,
        kind=job.kind,
        client=job.client,
        state=job.state,
        model=job.model,
        priority=job.priority,
        tier=p.get("tier"),
        steps=p.get("steps"),
        worker=job.worker,
        gpu=job.gpu,
        attempts=job.attempt,
        submitted_at=job.submitted_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        queue_wait_s=round(job.started_at - job.submitted_at, 4) if job.started_at else None,
        run_s=round(job.finished_at - job.started_at, 4)
        if job.finished_at and job.started_at
        else None,
        deadline_at=job.deadline,
        error=job.error,
        text=result.get("text"),
        images=result.get("images", []),
        verified=result.get("verified"),
        memory=result.get("memory"),
        memory_pending=bool(result.get("memory_pending")),
    )
