"""Building the service from settings (the composition root's half that imports the heavy parts).

Shared by the MCP server and the Ollama-compatible proxy: one ledger (SQLite, or Redis when
``PAI_GPU_JOBS_REDIS_URL`` is set), one manager per process, and the recorder that writes
which job produced which artefact into the shared memory after the outputs were verified.
"""

from __future__ import annotations

from typing import Any

from pai_core.audit import AuditLog
from pai_core.errors import ConfigError
from pai_core.log import register_secret
from pai_core.memory.record import ChangeFact, ChangeRecorder, PredicateSpec
from pai_gpu_jobs.ledger import Job, Ledger, Store
from pai_gpu_jobs.manager import Manager
from pai_gpu_jobs.outputs import Workspaces
from pai_gpu_jobs.service import GpuJobsService, Limits
from pai_gpu_jobs.settings import GpuJobsSettings
from pai_gpu_jobs.workers import make_client

__all__ = ["PREDICATES", "build_service", "job_facts", "open_ledger"]

PREDICATES = [
    PredicateSpec("PRODUCED_BY", "one", "An artefact was produced by a GPU job."),
    PredicateSpec("RAN_ON", "one", "A GPU job ran on a worker."),
    PredicateSpec("USED_MODEL", "one", "A GPU job used a model."),
    PredicateSpec("REQUESTED_BY", "one", "A GPU job was submitted by a client."),
    PredicateSpec("ON_GPU", "one", "A worker is bound to a GPU."),
]


def open_ledger(settings: GpuJobsSettings) -> Ledger:
    store: Store
    if settings.redis_url is not None:
        from pai_gpu_jobs.redis_store import RedisStore

        url = settings.redis_url.get_secret_value()
        if "@" in url:
            secret = url.split("@", 1)[0].rsplit(":", 1)[-1]
            if secret:
                register_secret(secret)
        store = RedisStore(url, settings.redis_prefix)
    else:
        from pai_gpu_jobs.sqlite_store import SqliteStore

        store = SqliteStore(settings.ledger_path)
    return Ledger(store, lease_ttl_s=settings.lease_ttl_s)


def job_facts(job: Job) -> list[ChangeFact]:
    """What a succeeded job produced, and with what, as facts for the shared memory."""
    subject = f"GPU job {job.id}"
    facts = [
        ChangeFact(
            subject,
            "RAN_ON",
            object=f"Worker {job.worker}",
            subject_type="gpu_job",
            object_type="gpu_worker",
        ),
        ChangeFact(
            f"Worker {job.worker}",
            "ON_GPU",
            object=f"GPU {job.gpu}",
            subject_type="gpu_worker",
            object_type="gpu",
        ),
        ChangeFact(
            subject,
            "REQUESTED_BY",
            object=f"Client {job.client}",
            subject_type="gpu_job",
            object_type="client",
        ),
    ]
    if job.model:
        facts.append(
            ChangeFact(
                subject,
                "USED_MODEL",
                object=f"Model {job.model}",
                subject_type="gpu_job",
                object_type="model",
            )
        )
    for path in (job.result or {}).get("images", []):
        facts.append(
            ChangeFact(
                f"Image {path}",
                "PRODUCED_BY",
                object=subject,
                subject_type="artefact",
                object_type="gpu_job",
            )
        )
    return facts


def build_service(settings: GpuJobsSettings) -> GpuJobsService:
    """The service for configured settings (ConfigError naming what is missing otherwise)."""
    if not settings.workers:
        raise ConfigError("the gpu_jobs server has no workers: set PAI_GPU_JOBS_WORKERS")
    names = [w.name for w in settings.workers]
    if len(set(names)) != len(names):
        raise ConfigError(f"worker names must be unique: {names}")
    assert settings.audit_log is not None
    audit = AuditLog(settings.audit_log)
    recorder = ChangeRecorder.from_settings(settings, predicates=PREDICATES)

    def remember(job: Job) -> dict[str, Any]:
        result = job.result or {}
        entry = audit.append(
            "gpu_jobs.job_succeeded",
            job=job.id,
            kind=job.kind,
            client=job.client,
            worker=job.worker,
            gpu=job.gpu,
            model=job.model,
            outputs=result.get("images", []),
            verified=result.get("verified"),
        )
        note = recorder.record(entry["seq"], job_facts(job), at=job.finished_at)
        return {"memory": note.model_dump(), "audit_id": entry["seq"]}

    # With memory recording off there is nothing to write after a job: its outcome is in the
    # ledger, and the audit entry exists as the memory's source. Its result says why.
    unrecorded = None if settings.remember else recorder.record("none", []).model_dump()
    clients = {w.name: make_client(w, settings.request_timeout_s) for w in settings.workers}
    manager = Manager(
        open_ledger(settings),
        clients,
        Workspaces(settings.data_path / "workspaces"),
        poll_s=settings.poll_s,
        health_interval_s=settings.health_interval_s,
        max_attempts=settings.max_attempts,
        request_timeout_s=settings.request_timeout_s,
        workspace_max_age_s=settings.workspace_max_age_s,
        recorder=remember if settings.remember else None,
        unrecorded=unrecorded,
    )
    limits = Limits(settings.max_images, settings.max_side, settings.default_client)
    return GpuJobsService(manager, audit, limits)
