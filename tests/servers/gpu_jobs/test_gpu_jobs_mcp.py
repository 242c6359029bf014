"""The GPU jobs server end to end over stdio with the SDK client."""

from __future__ import annotations

import json
from typing import Any

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from tests.conftest import script
from tests.servers.gpu_jobs.conftest import FakeWorker


def test_submit_wait_preview_cleanup_through_mcp(
    workers: dict[str, FakeWorker], pai_env: dict[str, str], tmp_path: Any
) -> None:
    configs = [workers["sd-2"].config(), workers["ollama-0"].config()]
    env = {**pai_env, "PAI_GPU_JOBS_WORKERS": json.dumps(configs), "PAI_GPU_JOBS_POLL_S": "0.01"}
    progress: list[str] = []

    async def run() -> None:
        params = StdioServerParameters(command=script("gpu_jobs"), env=env)
        async with stdio_client(params) as (r, w), ClientSession(r, w) as s:
            await s.initialize()
            tools = {t.name: t for t in (await s.list_tools()).tools}
            assert {
                "submit_llm_job", "submit_image_job", "job_status", "wait_job", "cancel_job",
                "list_jobs", "gpu_status", "list_workers", "drain_worker", "undrain_worker",
                "cleanup_job", "health",
            } <= set(tools)  # fmt: skip
            assert tools["job_status"].annotations.read_only_hint is True
            assert tools["cleanup_job"].annotations.destructive_hint is True
            assert tools["wait_job"].output_schema is not None

            sub = await s.call_tool(
                "submit_image_job",
                {"prompt": "a red fox", "tier": "draft", "width": 64, "height": 64, "count": 2},
            )
            assert not sub.is_error, sub.content
            job_id = sub.structured_content["job_id"]

            async def on_progress(done: float, total: float | None, message: str | None) -> None:
                progress.append(str(message))

            done = await s.call_tool(
                "wait_job",
                {"job_id": job_id, "preview": True},
                progress_callback=on_progress,
            )
            job = done.structured_content
            assert job["state"] == "succeeded" and job["steps"] == 20, job
            assert len(job["images"]) == 2 and job["memory"]["remembered"]
            assert [c.type for c in done.content].count("image") == 2

            llm = await s.call_tool("submit_llm_job", {"model": "llama3", "prompt": "ping"})
            text = await s.call_tool("wait_job", {"job_id": llm.structured_content["job_id"]})
            assert text.structured_content["text"] == "[gpu 0] echo: ping"

            bad = await s.call_tool("submit_image_job", {"prompt": "x", "count": 10_000})
            assert bad.is_error and "count must be from 1 to 16" in bad.content[0].text
            bad = await s.call_tool("submit_image_job", {"prompt": "x", "tier": "ultra"})
            assert bad.is_error and "unknown tier 'ultra'" in bad.content[0].text

            gpus = (await s.call_tool("gpu_status", {})).structured_content
            assert {g["gpu"] for g in gpus["gpus"]} == {"0", "2"}
            drained = await s.call_tool("drain_worker", {"name": "sd-2"})
            assert drained.structured_content["admitted"] is False
            await s.call_tool("undrain_worker", {"name": "sd-2"})
            listed = (await s.call_tool("list_jobs", {"state": "succeeded"})).structured_content
            assert listed["total"] == 2
            cleaned = await s.call_tool("cleanup_job", {"job_id": job_id})
            assert cleaned.structured_content["removed"] == job["images"]

    anyio.run(run)
    assert progress and progress[-1].startswith("succeeded"), progress
