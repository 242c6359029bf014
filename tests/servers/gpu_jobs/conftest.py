"""Loopback GPU workers (fake_worker.py as processes) and services built over them."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port, stop_process, wait_for_port

HERE = Path(__file__).resolve().parent


@dataclass
class FakeWorker:
    name: str
    kind: str
    gpu: str
    models: list[str]
    port: int
    proc: subprocess.Popen[bytes]
    concurrency: int = 1

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self, **over: Any) -> dict[str, Any]:
        cfg = {
            "name": self.name,
            "url": self.url,
            "kind": self.kind,
            "gpu": self.gpu,
            "concurrency": self.concurrency,
        }
        return {**cfg, **over}

    def control(self, **body: Any) -> None:
        httpx.post(f"{self.url}/_control", json=body, timeout=5).raise_for_status()

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = httpx.get(f"{self.url}/_stats", timeout=5).json()
        return out

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


def start_worker(
    name: str, kind: str, gpu: str, models: list[str], latency: float = 0.05
) -> FakeWorker:
    port = free_port()
    cmd = [
        sys.executable,
        str(HERE / "fake_worker.py"),
        "--kind", kind, "--port", str(port), "--gpu", gpu,
        "--models", ",".join(models), "--latency", str(latency),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
    return FakeWorker(name, kind, gpu, models, port, proc)


def wait_all(workers: list[FakeWorker]) -> None:
    for w in workers:
        wait_for_port(w.port, w.proc)


@pytest.fixture(scope="session")
def fleet() -> Iterator[dict[str, FakeWorker]]:
    """Long-lived workers shared by the tests (reset before each use)."""
    workers = [
        start_worker("ollama-0", "ollama", "0", ["llama3", "qwen"]),
        start_worker("ollama-1", "ollama", "1", ["llama3"]),
        start_worker("sd-2", "a1111", "2", ["sd15"]),
        start_worker("sd-3", "a1111", "3", ["sd15"]),
        start_worker("comfy-4", "comfyui", "4", ["sdxl.safetensors"]),
    ]
    try:
        wait_all(workers)
        yield {w.name: w for w in workers}
    finally:
        for w in workers:
            stop_process(w.proc)


@pytest.fixture
def workers(fleet: dict[str, FakeWorker]) -> dict[str, FakeWorker]:
    for w in fleet.values():
        w.concurrency = 1
        w.control(reset=True, latency=0.05)
    return fleet


@pytest.fixture
def spawn() -> Iterator[Callable[..., FakeWorker]]:
    """Workers of one test only (for the ones a test kills)."""
    started: list[FakeWorker] = []

    def make(*specs: tuple[str, str, str, list[str], float]) -> list[FakeWorker]:
        new = [start_worker(*spec) for spec in specs]
        started.extend(new)
        wait_all(new)
        return new

    yield make
    for w in started:
        stop_process(w.proc)


def settings_for(tmp: Path, configs: list[dict[str, Any]], **over: Any) -> Any:
    from pai_gpu_jobs.settings import GpuJobsSettings

    base: dict[str, Any] = {
        "workers": configs,
        "data_dir": tmp / "gpu_jobs",
        "audit_log": tmp / "audit.jsonl",
        "poll_s": 0.01,
        "health_interval_s": 0.2,
        "lease_ttl_s": 2.0,
    }
    return GpuJobsSettings(**{**base, **over})


def env_for(tmp: Path, configs: list[dict[str, Any]], **over: str) -> dict[str, str]:
    """PAI_GPU_JOBS_* variables for a manager process sharing ``tmp``'s ledger."""
    return {
        "PAI_GPU_JOBS_WORKERS": json.dumps(configs),
        "PAI_GPU_JOBS_DATA_DIR": str(tmp / "gpu_jobs"),
        "PAI_GPU_JOBS_AUDIT_LOG": str(tmp / "audit.jsonl"),
        "PAI_GPU_JOBS_POLL_S": "0.01",
        "PAI_GPU_JOBS_HEALTH_INTERVAL_S": "0.2",
        "PAI_GPU_JOBS_LEASE_TTL_S": "2",
        **over,
    }


@pytest.fixture
def make_service(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    from pai_gpu_jobs.compose import build_service

    built: list[Any] = []

    def make(configs: list[dict[str, Any]], **over: Any) -> Any:
        svc = build_service(settings_for(tmp_path, configs, **over))
        svc.manager.start()
        built.append(svc)
        return svc

    yield make
    for svc in built:
        svc.manager.stop()


def wait_done(svc: Any, job_ids: list[str], timeout: float = 20) -> list[Any]:
    """Poll until every job finished (deadline, no fixed sleep)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        views = [svc.status(j) for j in job_ids]
        if all(
            v.state in ("succeeded", "failed", "cancelled") and not v.memory_pending for v in views
        ):
            return views
        if time.monotonic() > deadline:
            raise TimeoutError([(v.job_id, v.state) for v in views])
        time.sleep(0.01)


def poll(check: Callable[[], Any], timeout: float = 20) -> Any:
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.01)
