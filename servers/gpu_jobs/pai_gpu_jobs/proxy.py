"""``pai gpu_jobs proxy --port N``: an Ollama-compatible front door onto the same fair queue.

``/api/generate`` and ``/api/chat`` (streamed NDJSON by default, as Ollama does, or one JSON
object with ``"stream": false``) and ``/api/tags``, ``/api/version``. Each request becomes a
job of client ``X-PAI-Client`` (default ``proxy``) pinned to this process, so its chunks can
be streamed back as the worker produces them; the process is also a full manager and runs any
other job of the queue. Binds to 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from collections import deque
from typing import Any

from pai_gpu_jobs.settings import GpuJobsSettings

__all__ = ["build_app", "main"]

log = logging.getLogger(__name__)
CHECK_S = 0.25  # a job that sends nothing for this long is looked up in the ledger


def build_app(svc: Any) -> Any:
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
        relay = Relay(asyncio.get_running_loop(), whole=not stream)

        def submit() -> Any:
            return svc.submit_llm(
                str(body.get("model", "")),
                prompt=None if chat else str(body.get("prompt", "")),
                messages=[Message(**m) for m in body.get("messages", [])] if chat else None,
                system=body.get("system"),
                options=body.get("options"),
                client=request.headers.get("x-pai-client", "proxy"),
                priority=int(request.headers.get("x-pai-priority", "0")),
                pinned=manager.id,
                sink=relay.put,
            )

        try:
            submitted = await relay.loop.run_in_executor(None, submit)
        except (PaiError, ValueError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        job_id = submitted.job_id

        async def next_chunk() -> dict[str, Any] | None:
            while True:
                item = await relay.get(CHECK_S)
                if item is not None:
                    return item
                # Nothing for a while: the job may have ended where no chunk tells us (a
                # cancel_job while it was queued, another manager's recovery).
                job = await relay.loop.run_in_executor(None, svc.ledger.get, job_id)
                if job is not None and job.state in ("failed", "cancelled"):
                    return {"error": job.error or job.state}
                if job is not None and job.state == "succeeded" and relay.empty():
                    return None  # its final chunk was already sent

        async def chunks() -> Any:
            finished = False
            try:
                while not finished:
                    item = await next_chunk()
                    finished = item is None or _last(item)
                    if item is not None:
                        yield item
            finally:
                manager.sinks.pop(job_id, None)
                if not finished:  # the client went away before the end: stop its job
                    job = svc.ledger.get(job_id)
                    if job is not None and job.state in ("queued", "running"):
                        svc.ledger.cancel(job_id)

        if stream:

            async def ndjson() -> Any:
                async for item in chunks():
                    yield (json.dumps(item) + "\n").encode()

            return StreamingResponse(ndjson(), media_type="application/x-ndjson")
        text, last = [], {}
        async for last in chunks():
            if "error" in last:
                return JSONResponse(last, status_code=502)
            text.append((last.get("message") or {}).get("content", "") or last.get("response", ""))
        if chat:
            last["message"] = {"role": "assistant", "content": "".join(text)}
        else:
            last["response"] = "".join(text)
        return JSONResponse(last)

    routes = [
        Route("/api/tags", tags, methods=["GET"]),
        Route("/api/version", version, methods=["GET"]),
        Route("/api/generate", run, methods=["POST"]),
        Route("/api/chat", run, methods=["POST"]),
    ]
    return Starlette(routes=routes)


class Relay:
    """One job's chunks, from the thread that runs it to the event loop that answers.

    The job's thread only appends; the loop is woken for each chunk when streaming, and only
    for the last one (final or error) when the answer is one JSON object.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, *, whole: bool) -> None:
        self.loop = loop
        self.whole = whole
        self.items: deque[dict[str, Any]] = deque()
        self.ready = asyncio.Event()

    def put(self, item: dict[str, Any]) -> None:  # on the job's thread
        self.items.append(item)
        if not self.whole or _last(item):
            self.loop.call_soon_threadsafe(self.ready.set)

    def empty(self) -> bool:
        return not self.items

    async def get(self, timeout: float) -> dict[str, Any] | None:
        """The next chunk, or None when none came within ``timeout`` (on the loop)."""
        while True:
            self.ready.clear()  # set() runs on this loop too, so no wake-up is lost
            if self.items and (not self.whole or _last(self.items[-1])):
                return self.items.popleft()
            try:
                async with asyncio.timeout(timeout):
                    await self.ready.wait()
            except TimeoutError:
                return self.items.popleft() if self.items and not self.whole else None


def _last(item: dict[str, Any]) -> bool:
    return bool(item.get("done")) or "error" in item


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
