"""The queue in one process: placement, limits, fairness, priority, retries, cancel, deadlines,
tiers, verified outputs, health, and bad input — against loopback workers."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from pai_core.errors import InvalidInput
from pai_core.settings import MemorySettings
from tests.servers.gpu_jobs.conftest import poll, wait_done


def test_placement_only_on_workers_with_the_model_and_round_robin(workers, make_service):
    svc = make_service([w.config() for w in workers.values()])
    both = [svc.submit_llm("llama3", prompt=f"p{i}").job_id for i in range(6)]
    only0 = [svc.submit_llm("qwen", prompt=f"q{i}").job_id for i in range(3)]
    views = wait_done(svc, both + only0)
    assert all(v.state == "succeeded" for v in views), views
    spread = Counter(v.worker for v in views[:6])
    assert spread["ollama-0"] >= 2 and spread["ollama-1"] >= 2, spread
    assert {v.worker for v in views[6:]} == {"ollama-0"}
    for v in views:  # the text names the GPU that made it
        assert v.text.startswith(f"[gpu {v.gpu}]"), v


def test_concurrency_limit_holds_under_load(workers, make_service):
    o0, o1 = workers["ollama-0"], workers["ollama-1"]
    o0.concurrency = o1.concurrency = 2
    svc = make_service([o0.config(), o1.config()])
    ids = [svc.submit_llm("llama3", prompt=f"load {i}").job_id for i in range(24)]
    views = wait_done(svc, ids)
    assert all(v.state == "succeeded" for v in views)
    for w in (o0, o1):
        stats = w.stats()
        assert stats["max_running"] <= 2, stats
        assert stats["max_running"] == 2  # the slots were really used
    assert sum(w.stats()["jobs"] for w in (o0, o1)) == 24


def test_one_clients_batch_does_not_starve_anothers_single_job(workers, make_service):
    w = workers["sd-2"]
    svc = make_service([w.config()])
    batch = [
        svc.submit_image("batch", tier="draft", width=64, height=64, client="bulk").job_id
        for _ in range(20)
    ]
    single = svc.submit_image("mine", tier="draft", width=64, height=64, client="alice").job_id
    views = wait_done(svc, [*batch, single])
    order = sorted(views, key=lambda v: v.started_at)
    position = [v.job_id for v in order].index(single)
    assert position <= 2, position  # next in line, not after the 20


def test_priority_orders_a_clients_jobs(workers, make_service):
    w = workers["sd-2"]
    w.control(latency=0.2)
    svc = make_service([w.config()])
    first = svc.submit_image("busy", width=64, height=64).job_id
    poll(lambda: svc.status(first).state == "running")
    low = svc.submit_image("low", width=64, height=64, priority=-5).job_id
    high = svc.submit_image("high", width=64, height=64, priority=5).job_id
    v_low, v_high = wait_done(svc, [low, high])
    assert v_high.started_at < v_low.started_at


def test_worker_killed_mid_job_completes_elsewhere_with_one_result(spawn, make_service):
    a, b = spawn(
        ("a-dies", "ollama", "7", ["llama3"], 0.3), ("b-lives", "ollama", "8", ["llama3"], 0.05)
    )
    a.control(die=True)
    svc = make_service([a.config(), b.config()])
    sub = svc.submit_llm("llama3", prompt="survive", idempotency_key="k-1")
    (view,) = wait_done(svc, [sub.job_id])
    assert view.state == "succeeded", view
    assert view.worker == "b-lives" and view.attempts == 2
    assert view.text == "[gpu 8] echo: survive"
    again = svc.submit_llm("llama3", prompt="survive", idempotency_key="k-1")
    assert again.duplicate and again.job_id == sub.job_id
    assert svc.list(None, None, None, None, 50, 0).total == 1
    dead = next(x for x in svc.workers().workers if x.name == "a-dies")
    assert not dead.admitted and "a-dies" in (dead.reason or "")


def test_cancel_queued_and_running(workers, make_service):
    w = workers["sd-3"]
    w.control(latency=3.0)
    svc = make_service([w.config()])
    running = svc.submit_image("long", width=64, height=64).job_id
    poll(lambda: svc.status(running).state == "running")
    queued = svc.submit_image("waiting", width=64, height=64).job_id
    assert svc.cancel(queued).state == "cancelled"
    svc.cancel(running)
    (view,) = wait_done(svc, [running], timeout=10)
    assert view.state == "cancelled" and not view.images
    assert w.stats()["interrupts"] >= 1


def test_deadline_fails_a_job_that_cannot_start_in_time(workers, make_service):
    w = workers["sd-2"]
    w.control(latency=1.0)
    svc = make_service([w.config()])
    svc.submit_image("hog", width=64, height=64)
    late = svc.submit_image("late", width=64, height=64, deadline_s=0.2).job_id
    (view,) = wait_done(svc, [late], timeout=10)
    assert view.state == "failed" and "deadline" in (view.error or "")


def test_tiers_arrive_as_steps_at_the_workers(workers, make_service):
    sd, comfy = workers["sd-2"], workers["comfy-4"]
    svc = make_service([sd.config()])
    ids = [
        svc.submit_image("t", tier=t, width=64, height=64).job_id
        for t in ("draft", "standard", "high")
    ]
    ids.append(svc.submit_image("t", tier="draft", steps=7, width=64, height=64).job_id)
    wait_done(svc, ids)
    assert sorted(sd.stats()["steps"]) == [7, 20, 50, 100]
    svc2 = make_service([comfy.config()], data_dir=svc.manager.workspaces.root.parent / "c")
    (v,) = wait_done(
        svc2, [svc2.submit_image("c", tier="high", width=64, height=72, count=2).job_id]
    )
    assert v.state == "succeeded" and comfy.stats()["steps"] == [100] and len(v.images) == 2


@pytest.mark.parametrize("fault", ["corrupt", "wrong_size"])
def test_bad_images_from_a_worker_fail_the_job(workers, make_service, fault):
    w = workers["sd-3"]
    w.control(**{fault: True})
    svc = make_service([w.config()])
    (view,) = wait_done(svc, [svc.submit_image("x", width=64, height=64, count=2).job_id])
    assert view.state == "failed" and not view.images
    assert ("does not decode" if fault == "corrupt" else "72x64") in (view.error or ""), view
    assert not (svc.manager.workspaces.root / view.job_id).exists()
    assert not any(svc.manager.workspaces.attempts.glob("*"))


def test_outputs_verified_remembered_and_cleaned(workers, make_service, tmp_path: Path):
    from pai_core.memory import open_memory

    svc = make_service([workers["sd-2"].config()])
    (view,) = wait_done(svc, [svc.submit_image("a cat", width=96, height=64, count=3).job_id])
    assert view.state == "succeeded" and len(view.images) == 3
    assert view.verified == "3 image(s) decoded, each 96x64"
    assert view.memory and view.memory["remembered"], view.memory
    mem = open_memory(MemorySettings())  # PAI_HOME is this test's temp dir
    facts = mem.graph.get_entity(f"Image {view.images[0]}").outgoing
    assert any(f.predicate == "PRODUCED_BY" and f.source.startswith("gpu_jobs:") for f in facts)
    removed = svc.cleanup(view.job_id).removed
    assert removed == view.images and not Path(view.images[0]).exists()


def test_a_failing_worker_is_drained_and_readmitted(workers, make_service):
    w = workers["ollama-1"]
    svc = make_service([w.config()])
    w.control(down=True)
    poll(lambda: not svc.workers().workers[0].admitted)
    job = svc.submit_llm("llama3", prompt="wait for me").job_id
    w.control(down=False)
    poll(lambda: svc.workers().workers[0].admitted)
    (view,) = wait_done(svc, [job])
    assert view.state == "succeeded"
    svc.set_drained("ollama-1", True)
    assert svc.workers().workers[0].reason == "drained by drain_worker"
    svc.set_drained("ollama-1", False)


def test_gpu_status_reports_workers_and_says_what_is_unavailable(workers, make_service):
    svc = make_service([w.config() for w in workers.values()])
    wait_done(svc, [svc.submit_llm("llama3", prompt="x").job_id])
    status = svc.gpu_status()
    by = {g.gpu: g for g in status.gpus}
    assert by["0"].reported["ollama-0"]["loaded_models"][0]["size_vram"] == 800
    assert "cuda" in by["2"].reported["sd-2"]
    assert by["4"].reported["comfy-4"]["devices"][0]["name"] == "fake gpu 4"
    assert sum(g.finished_last_60s for g in status.gpus) == 1
    assert status.nvml == "ok" or status.nvml.startswith("unavailable")
    if status.nvml != "ok":
        assert all(
            isinstance(g.nvml, str) and g.nvml.startswith("unavailable") for g in status.gpus
        )


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"model": "nope"}, "model"),
        ({"tier": "ultra"}, "tier"),
        ({"width": -64}, "width"),
        ({"count": 10_000}, "count"),
        ({"steps": 0}, "steps"),
    ],
)
def test_bad_image_input_is_a_clear_error(workers, make_service, kwargs, field):
    svc = make_service([workers["sd-2"].config()])
    with pytest.raises(InvalidInput) as err:
        svc.submit_image("x", **kwargs)
    assert err.value.details["field"] == field
    assert "nothing was changed" in str(err.value)
    assert svc.list(None, None, None, None, 10, 0).total == 0


def test_unknown_llm_model_is_a_clear_error(workers, make_service):
    svc = make_service([workers["ollama-0"].config()])
    with pytest.raises(InvalidInput, match="no Ollama worker has the model 'gpt-9'"):
        svc.submit_llm("gpt-9", prompt="hi")


def test_wait_is_woken_when_this_process_starts_and_ends_the_job(workers, make_service):
    import threading

    import anyio

    w = workers["ollama-0"]
    w.control(latency=0.2)
    svc = make_service([w.config()])
    first = svc.submit_llm("llama3", prompt="first").job_id
    poll(lambda: svc.status(first).state == "running")
    second = svc.submit_llm("llama3", prompt="second").job_id  # queued behind the first
    woken = threading.Semaphore(0)
    unwatch = svc.manager.watch(second, woken.release)
    progress: list[str] = []

    async def note(done: float, total: float, message: str) -> None:
        progress.append(message)

    view = anyio.run(svc.wait, second, 30.0, note)
    unwatch()
    assert view.state == "succeeded" and view.text
    assert [m.split(" ")[0] for m in progress] == ["queued", "running", "succeeded"], progress
    assert woken.acquire(timeout=0) and woken.acquire(timeout=0)  # started, then ended
    assert second not in svc.manager._watchers  # both waiters let go
