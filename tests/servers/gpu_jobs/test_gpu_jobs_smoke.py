from __future__ import annotations

from tests.servers.gpu_jobs.conftest import wait_done


def test_smoke(workers, make_service):
    svc = make_service([w.config() for w in workers.values()])
    a = svc.submit_llm("llama3", prompt="hello there")
    b = svc.submit_image("a cat", tier="draft", width=64, height=64, count=2)
    views = wait_done(svc, [a.job_id, b.job_id])
    print(views)
    assert views[0].state == "succeeded", views[0]
    assert views[1].state == "succeeded", views[1]
