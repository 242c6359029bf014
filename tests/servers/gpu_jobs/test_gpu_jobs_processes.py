"""Several manager processes on one queue: three on one SQLite ledger, two on one real Redis,
a manager killed with -9 whose jobs the next one recovers, and the Ollama proxy streaming."""

from __future__ import annotations

import json
import secrets
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import VENV_BIN, free_port, require_binary, stop_process, wait_for_port
from tests.servers.gpu_jobs.conftest import FakeWorker, env_for, poll, settings_for


def llm_job(i: int, client: str = "batch") -> Any:
    from pai_gpu_jobs.ledger import Job

    return Job(
        id="", kind="llm.generate", family="llm", client=client, model="llama3",
        params={"prompt": f"job {i}", "options": {}},
    )  # fmt: skip


def image_job(i: int) -> Any:
    from pai_gpu_jobs.ledger import Job

    params = {"prompt": f"img {i}", "steps": 20, "tier": "draft", "width": 64, "height": 64,
              "count": 1, "seed": i}  # fmt: skip
    return Job(id="", kind="image.txt2img", family="image", client="c", model="", params=params)


class Managers:
    def __init__(self, base_env: dict[str, str]) -> None:
        self.base_env = base_env
        self.procs: list[tuple[subprocess.Popen[bytes], int]] = []

    def start(self, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
        port = free_port()
        cmd = [str(VENV_BIN / "pai"), "gpu_jobs", "proxy", "--port", str(port)]
        proc = subprocess.Popen(cmd, env={**self.base_env, **env}, stderr=subprocess.DEVNULL)
        self.procs.append((proc, port))
        return proc, port

    def wait(self) -> None:
        for proc, port in self.procs:
            if proc.poll() is None:
                wait_for_port(port, proc)


@pytest.fixture
def managers(pai_env: dict[str, str]) -> Iterator[Managers]:
    m = Managers(pai_env)
    yield m
    for proc, _ in m.procs:
        stop_process(proc)


def all_done(ledger: Any, ids: list[str]) -> list[Any] | None:
    jobs = [ledger.get(i) for i in ids]
    return jobs if all(j.state in ("succeeded", "failed", "cancelled") for j in jobs) else None


def test_three_managers_on_one_sqlite_ledger_and_the_proxy(
    workers: dict[str, FakeWorker], managers: Managers, tmp_path: Path
) -> None:
    from pai_gpu_jobs.compose import open_ledger

    o0, o1 = workers["ollama-0"], workers["ollama-1"]
    o0.concurrency = o1.concurrency = 2
    for w in (o0, o1):
        w.control(latency=0.1)
    configs = [o0.config(), o1.config()]
    ledger = open_ledger(settings_for(tmp_path, configs))
    ids = [ledger.submit(llm_job(i))[0].id for i in range(16)]
    ports = [managers.start(env_for(tmp_path, configs))[1] for _ in range(3)]
    managers.wait()
    jobs = poll(lambda: all_done(ledger, ids), timeout=40)
    assert all(j.state == "succeeded" for j in jobs)
    assert all(w.stats()["max_running"] <= 2 for w in (o0, o1)), [w.stats() for w in (o0, o1)]
    assert o0.stats()["jobs"] + o1.stats()["jobs"] == 16  # each job ran exactly once

    # The Ollama front door streams a chat through the same queue.
    base = f"http://127.0.0.1:{ports[0]}"
    assert "llama3" in [m["name"] for m in httpx.get(f"{base}/api/tags").json()["models"]]
    body = {"model": "llama3", "messages": [{"role": "user", "content": "hi there"}]}
    lines = []
    with httpx.stream("POST", f"{base}/api/chat", json=body, timeout=20) as resp:
        assert resp.status_code == 200
        lines = [json.loads(x) for x in resp.iter_lines() if x.strip()]
    assert len(lines) >= 3 and lines[-1]["done"] is True
    text = "".join(x["message"]["content"] for x in lines)
    assert text in ("[gpu 0] echo: hi there", "[gpu 1] echo: hi there")
    plain = httpx.post(
        f"{base}/api/generate", json={"model": "llama3", "prompt": "once", "stream": False}
    ).json()
    assert plain["response"].endswith("echo: once") and plain["done"]

    # The answer can reach the client just before its job's outcome reaches the ledger.
    def proxied_done() -> list[Any] | None:
        proxied, total = ledger.select({"client": "proxy"})
        return proxied if total == 2 and all(j.state != "running" for j in proxied) else None

    assert all(j.state == "succeeded" for j in poll(proxied_done))
    bad = httpx.post(f"{base}/api/generate", json={"model": "nope", "prompt": "x"})
    assert bad.status_code == 400 and "no Ollama worker has the model" in bad.json()["error"]


def test_manager_killed_with_9_its_jobs_are_recovered(
    workers: dict[str, FakeWorker], managers: Managers, tmp_path: Path
) -> None:
    from pai_gpu_jobs.compose import open_ledger

    sd2, sd3 = workers["sd-2"], workers["sd-3"]
    for w in (sd2, sd3):
        w.control(latency=0.6)
    configs = [sd2.config(), sd3.config()]
    ledger = open_ledger(settings_for(tmp_path, configs))
    ids = [ledger.submit(image_job(i))[0].id for i in range(4)]
    first, _ = managers.start(env_for(tmp_path, configs))
    running = poll(lambda: [j for j in map(ledger.get, ids) if j.state == "running"][1:] and True)
    assert running
    was_running = [j.id for j in map(ledger.get, ids) if j.state == "running"]
    first.send_signal(signal.SIGKILL)
    first.wait()
    managers.start(env_for(tmp_path, configs))
    jobs = poll(lambda: all_done(ledger, ids), timeout=30)
    assert all(j.state == "succeeded" for j in jobs), [(j.state, j.error) for j in jobs]
    for j in jobs:
        assert (j.attempt == 2) == (j.id in was_running), (j.id, j.attempt)
        assert len(j.result["images"]) == 1 and Path(j.result["images"][0]).is_file()


@pytest.fixture
def redis_url() -> Iterator[str]:
    binary = require_binary("redis-server", package="redis-server")
    port, password = free_port(), secrets.token_hex(12)
    directory = Path(tempfile.mkdtemp(prefix="pai-redis-"))
    cmd = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory),
           "--save", "", "--appendonly", "no", "--requirepass", password]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, proc)
        yield f"redis://:{password}@127.0.0.1:{port}/0"
    finally:
        stop_process(proc)
        shutil.rmtree(directory, ignore_errors=True)


def test_two_managers_on_one_redis_never_exceed_a_workers_limit(
    workers: dict[str, FakeWorker], managers: Managers, tmp_path: Path, redis_url: str
) -> None:
    from pai_gpu_jobs.compose import open_ledger

    o0, o1 = workers["ollama-0"], workers["ollama-1"]
    o0.concurrency, o1.concurrency = 2, 1
    for w in (o0, o1):
        w.control(latency=0.1)
    configs = [o0.config(), o1.config()]
    ledger = open_ledger(settings_for(tmp_path, configs, redis_url=redis_url))
    ids = [ledger.submit(llm_job(i, client=f"c{i % 2}"))[0].id for i in range(20)]
    assert (
        ledger.describe().startswith("redis:") and redis_url.split("@")[0] not in ledger.describe()
    )
    for n in range(2):  # separate data dirs: only Redis is shared
        managers.start(env_for(tmp_path / f"m{n}", configs, PAI_GPU_JOBS_REDIS_URL=redis_url))
    managers.wait()
    jobs = poll(lambda: all_done(ledger, ids), timeout=40)
    assert all(j.state == "succeeded" for j in jobs)
    assert o0.stats()["max_running"] <= 2 and o1.stats()["max_running"] <= 1
    assert o0.stats()["jobs"] + o1.stats()["jobs"] == 20
