"""``pai gpu_jobs proxy --port N``: an Ollama-compatible front door onto the same fair queue.

``/api/generate`` and ``/api/chat`` (streamed NDJSON by default, as Ollama does, or one JSON
object with ``"stream": false``) and ``/api/tags``, ``/api/version``. Each request becomes a
job of client ``X-PAI-Client`` (default ``proxy``) pinned to this process, so its chunks can
be streamed back as the worker produces them; the process is also a full manager and runs any
other job of the queue. Binds to 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import argparse
import json
import logging
import queue
from typing import Any

from pai_gpu_jobs.settings import GpuJobsSettings

__all__ = ["build_app", "main"]

log = logging.getLogger(__name__)
END = object()


def build_app(svc: Any) -> Any:
    import anyio
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response, StreamingResponse
    from starlette.routing import Route

    from pai_core.errors import PaiError
    from pai_gpu_jobs.models import Message

    manager = svc.manager

    async def tags(_: Request) -> Response:
        names = sorted(
            {m for c in manager.configs() if c.family == "llm" for m in manager.models[c.name]}
        )
        return JSONResponse({"models": [{"name": n, "model": n} for n in names]})

    async def version(_: Request) -> Response:
        return JSONResponse({"version": "pai-gpu-jobs-proxy"})

    async def run(request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"error": "body is not JSON"}, status_code=400)
        chat = request.url.path.endswith("/chat")
        stream = body.get("stream", True)
        chunks: queue.Queue[Any] = queue.Queue()
        try:
            submitted = svc.submit_llm(
                str(body.get("model", "")),
                prompt=None if chat else str(body.get("prompt", "")),
                messages=[Message(**m) for m in body.get("messages", [])] if chat else None,
                system=body.get("system"),
                options=body.get("options"),
                client=request.headers.get("x-pai-client", "proxy"),
                priority=int(request.headers.get("x-pai-priority", "0")),
                pinned=manager.id,
                sink=chunks.put,
            )
        except (PaiError, ValueError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        job_id = submitted.job_id

        async def next_chunk() -> Any:
            while True:
                item = await anyio.to_thread.run_sync(_get, chunks, 0.25)
                if item is not None:
                    return item
                job = svc.ledger.get(job_id)
                if job is not None and job.state in ("failed", "cancelled"):
                    return {"error": job.error or job.state}
                if job is not None and job.state == "succeeded" and chunks.empty():
                    return END

        async def ndjson() -> Any:
            try:
                while True:
                    item = await next_chunk()
                    if item is END:
                        return
                    yield (json.dumps(item) + "\n").encode()
                    if item.get("done") or "error" in item:
                        return
            finally:
                manager.sinks.pop(job_id, None)
                job = svc.ledger.get(job_id)
                if job is not None and job.state in ("queued", "running"):
                    svc.ledger.cancel(job_id)  # the client went away

        if stream:
            return StreamingResponse(ndjson(), media_type="application/x-ndjson")
        text, last = "", {}
        async for line in ndjson():
            last = json.loads(line)
            if "error" in last:
                return JSONResponse(last, status_code=502)
            text += (last.get("message") or {}).get("content", "") or last.get("response", "")
        if chat:
            last["message"] = {"role": "assistant", "content": text}
        else:
            last["response"] = text
        return JSONResponse(last)

    routes = [
        Route("/api/tags", tags, methods=["GET"]),
        Route("/api/version", version, methods=["GET"]),
        Route("/api/generate", run, methods=["POST"]),
        Route("/api/chat", run, methods=["POST"]),
    ]
    return Starlette(routes=routes)


def _get(q: queue.Queue[Any], timeout: float) -> Any:
    try:
        return q.get(timeout=timeout)
    except queue.Empty:
        return None


def main(settings: GpuJobsSettings, argv: list[str]) -> int:
    """Serve the Ollama-compatible proxy until interrupted."""
    import uvicorn

    from pai_gpu_jobs.compose import build_service

    parser = argparse.ArgumentParser(prog="pai gpu_jobs proxy")
    parser.add_argument("--port", type=int, default=11435)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    svc = build_service(settings)
    svc.manager.start()
    try:
        uvicorn.run(build_app(svc), host=args.host, port=args.port, log_level="warning")
    finally:
        svc.manager.stop()
    return 0
