"""A loopback GPU worker for tests and benchmarks: Ollama, AUTOMATIC1111 or ComfyUI.

It implements the documented endpoints the manager uses, answers deterministically (text that
names the worker's GPU label; real PNGs of the requested size made with Pillow), and can be
told through ``POST /_control`` to add latency or fail: ``fail`` (HTTP 500 for the next N
requests), ``die`` (exit the process in the middle of the next job), ``corrupt`` (bytes that
are not an image), ``wrong_size``, ``down`` (every endpoint 503). ``GET /_stats`` reports the
requests seen, the most jobs it ran at once and the steps it was asked for.

    python fake_worker.py --kind ollama --port 11434 --gpu 0 --models llama3,qwen
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import time
import uuid
from typing import Any

import uvicorn
from PIL import Image, PngImagePlugin
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


class State:
    def __init__(self, kind: str, gpu: str, models: list[str], latency: float) -> None:
        self.kind, self.gpu, self.models, self.latency = kind, gpu, models, latency
        self.reset()

    def reset(self) -> None:
        self.fail = 0
        self.die = False
        self.corrupt = False
        self.wrong_size = False
        self.down = False
        self.running = 0
        self.max_running = 0
        self.jobs = 0
        self.steps: list[int] = []
        self.prompts: list[str] = []
        self.history: dict[str, Any] = {}
        self.files: dict[str, bytes] = {}
        self.interrupts = 0


S: State


def png(width: int, height: int, seed: int, label: str) -> bytes:
    shade = (seed * 37) % 256
    img = Image.new("RGB", (width, height), (shade, 255 - shade, 128))
    meta = PngImagePlugin.PngInfo()
    meta.add_text("gpu", label)
    buf = io.BytesIO()
    img.save(buf, format="PNG", pnginfo=meta)
    return buf.getvalue()


def words(prompt: str) -> list[str]:
    return [f"[gpu {S.gpu}]", *f"echo: {prompt}".split()]


async def job_start(prompt: str) -> Response | None:
    if S.down:
        return JSONResponse({"error": "down"}, status_code=503)
    if S.fail > 0:
        S.fail -= 1
        return JSONResponse({"error": "injected failure"}, status_code=500)
    S.jobs += 1
    S.running += 1
    S.max_running = max(S.max_running, S.running)
    S.prompts.append(prompt)
    return None


def job_end() -> None:
    S.running -= 1


def guard(handler: Any) -> Any:
    async def wrapped(request: Request) -> Response:
        if S.down:
            return JSONResponse({"error": "down"}, status_code=503)
        response: Response = await handler(request)
        response.headers["X-Worker-GPU"] = S.gpu
        return response

    return wrapped


# ---------------------------------------------------------------- Ollama
async def ollama_tags(_: Request) -> Response:
    return JSONResponse({"models": [{"name": m, "model": m, "size": 1000} for m in S.models]})


async def ollama_ps(_: Request) -> Response:
    return JSONResponse(
        {"models": [{"name": m, "size": 1000, "size_vram": 800} for m in S.models[:1]]}
    )


async def ollama_version(_: Request) -> Response:
    return JSONResponse({"version": "0.0.0-fake"})


async def ollama_run(request: Request) -> Response:
    arrived = time.monotonic()  # a job's time on the simulated GPU counts from here
    body = await request.json()
    chat = request.url.path.endswith("/chat")
    prompt = body["messages"][-1]["content"] if chat else body["prompt"]
    if body.get("model") not in S.models:
        return JSONResponse({"error": f"model '{body.get('model')}' not found"}, status_code=404)
    refused = await job_start(prompt)
    if refused is not None:
        return refused
    tokens = words(prompt)
    die = S.die

    def chunk(text: str, done: bool) -> bytes:
        out: dict[str, Any] = {"model": body["model"], "created_at": "2024-01-01T00:00:00Z"}
        if chat:
            out["message"] = {"role": "assistant", "content": text}
        else:
            out["response"] = text
        out["done"] = done
        if done:
            out.update(
                done_reason="stop",
                eval_count=len(tokens),
                prompt_eval_count=1,
                total_duration=int(S.latency * 1e9),
            )
        return (json.dumps(out) + "\n").encode()

    async def stream() -> Any:
        # The request holds its slot for ``latency`` from its arrival to its final chunk, as a
        # GPU's run of that length would: token i is due at arrival + latency * (i + 1) / (n + 1)
        # and the final chunk at arrival + latency, however late the event loop wakes up for
        # each one. (Timed from the first token instead, each job took its latency plus the
        # fake's own request handling, about 2 ms more: less than the capacity it declares.)
        try:
            for i, tok in enumerate(tokens + [""]):
                due = arrived + S.latency * (i + 1) / (len(tokens) + 1)
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                if die and i == 1:
                    os._exit(1)
                yield chunk(tok if i == 0 or not tok else " " + tok, i == len(tokens))
        finally:
            job_end()

    if body.get("stream", True):
        return StreamingResponse(stream(), media_type="application/x-ndjson")
    text = ""
    async for piece in stream():
        text += json.loads(piece).get("response") or json.loads(piece).get("message", {}).get(
            "content", ""
        )
    final = json.loads(chunk("", True))
    if chat:
        final["message"]["content"] = text
    else:
        final["response"] = text
    return JSONResponse(final)


# ---------------------------------------------------------------- AUTOMATIC1111
def images_for(body: dict[str, Any]) -> list[bytes]:
    w, h = int(body.get("width", 512)), int(body.get("height", 512))
    if S.wrong_size:
        w += 8
    n = int(body.get("batch_size", 1)) * int(body.get("n_iter", 1))
    seed = int(body.get("seed", -1))
    if S.corrupt:
        return [b"not an image at all" for _ in range(n)]
    return [png(w, h, seed + i, S.gpu) for i in range(n)]


async def a1111_models(_: Request) -> Response:
    return JSONResponse(
        [
            {"title": f"{m}.safetensors", "model_name": m, "hash": "0", "filename": m}
            for m in S.models
        ]
    )


async def a1111_run(request: Request) -> Response:
    body = await request.json()
    refused = await job_start(body.get("prompt", ""))
    if refused is not None:
        return refused
    try:
        S.steps.append(int(body.get("steps", 0)))
        deadline = time.monotonic() + S.latency
        interrupts = S.interrupts
        while time.monotonic() < deadline and S.interrupts == interrupts:
            await asyncio.sleep(min(0.01, S.latency))
            if S.die:
                os._exit(1)
        blobs = images_for(body)
        info = {"seed": body.get("seed"), "steps": body.get("steps"), "gpu": S.gpu}
        return JSONResponse(
            {
                "images": [base64.b64encode(b).decode() for b in blobs],
                "parameters": body,
                "info": json.dumps(info),
            }
        )
    finally:
        job_end()


async def a1111_progress(_: Request) -> Response:
    return JSONResponse({"progress": 0.0, "eta_relative": 0.0, "state": {"job_count": S.running}})


async def a1111_memory(_: Request) -> Response:
    return JSONResponse(
        {
            "ram": {"free": 1, "used": 1, "total": 2},
            "cuda": {"system": {"free": 10, "used": 6, "total": 16}, "gpu": S.gpu},
        }
    )


async def interrupt(_: Request) -> Response:
    S.interrupts += 1
    return JSONResponse({})


# ---------------------------------------------------------------- ComfyUI
async def comfy_object_info(_: Request) -> Response:
    return JSONResponse(
        {"CheckpointLoaderSimple": {"input": {"required": {"ckpt_name": [S.models, {}]}}}}
    )


async def comfy_prompt(request: Request) -> Response:
    graph = (await request.json())["prompt"]
    sampler = next(n for n in graph.values() if n["class_type"] == "KSampler")["inputs"]
    latent = next(n for n in graph.values() if n["class_type"] == "EmptyLatentImage")["inputs"]
    text = next(n for n in graph.values() if n["class_type"] == "CLIPTextEncode")["inputs"]
    refused = await job_start(text["text"])
    if refused is not None:
        return refused
    S.steps.append(int(sampler["steps"]))
    prompt_id = uuid.uuid4().hex

    async def run() -> None:
        try:
            await asyncio.sleep(S.latency)
            body = {
                "width": latent["width"],
                "height": latent["height"],
                "batch_size": latent["batch_size"],
                "seed": sampler["seed"],
            }
            refs = []
            for i, blob in enumerate(images_for(body)):
                name = f"{prompt_id}_{i:05d}_.png"
                S.files[name] = blob
                refs.append({"filename": name, "subfolder": "", "type": "output"})
            S.history[prompt_id] = {
                "prompt": [0, prompt_id, graph, {}, ["9"]],
                "outputs": {"9": {"images": refs}},
                "status": {"status_str": "success", "completed": True, "messages": []},
            }
        finally:
            job_end()

    asyncio.get_running_loop().create_task(run())
    return JSONResponse({"prompt_id": prompt_id, "number": S.jobs, "node_errors": {}})


async def comfy_history(request: Request) -> Response:
    prompt_id = request.path_params["prompt_id"]
    entry = S.history.get(prompt_id)
    return JSONResponse({prompt_id: entry} if entry else {})


async def comfy_view(request: Request) -> Response:
    blob = S.files.get(request.query_params.get("filename", ""))
    if blob is None:
        return Response(status_code=404)
    return Response(blob, media_type="image/png")


async def comfy_stats(_: Request) -> Response:
    return JSONResponse(
        {
            "system": {"os": "posix", "comfyui_version": "fake"},
            "devices": [
                {
                    "name": f"fake gpu {S.gpu}",
                    "type": "cuda",
                    "index": 0,
                    "vram_total": 16,
                    "vram_free": 10,
                }
            ],
        }
    )


async def comfy_queue(_: Request) -> Response:
    return JSONResponse({})


# ---------------------------------------------------------------- control
async def control(request: Request) -> Response:
    body = await request.json()
    if body.get("reset"):
        S.reset()
    for key in ("fail", "die", "corrupt", "wrong_size", "down", "latency", "models"):
        if key in body:
            setattr(S, key, body[key])
    return JSONResponse({"ok": True})


async def stats(_: Request) -> Response:
    return JSONResponse(
        {
            "jobs": S.jobs,
            "running": S.running,
            "max_running": S.max_running,
            "steps": S.steps,
            "prompts": S.prompts,
            "interrupts": S.interrupts,
            "gpu": S.gpu,
        }
    )


ROUTES = {
    "ollama": [
        ("/api/tags", ollama_tags, ["GET"]),
        ("/api/ps", ollama_ps, ["GET"]),
        ("/api/version", ollama_version, ["GET"]),
        ("/api/generate", ollama_run, ["POST"]),
        ("/api/chat", ollama_run, ["POST"]),
    ],
    "a1111": [
        ("/sdapi/v1/sd-models", a1111_models, ["GET"]),
        ("/sdapi/v1/txt2img", a1111_run, ["POST"]),
        ("/sdapi/v1/img2img", a1111_run, ["POST"]),
        ("/sdapi/v1/progress", a1111_progress, ["GET"]),
        ("/sdapi/v1/memory", a1111_memory, ["GET"]),
        ("/sdapi/v1/interrupt", interrupt, ["POST"]),
    ],
    "comfyui": [
        ("/object_info/CheckpointLoaderSimple", comfy_object_info, ["GET"]),
        ("/prompt", comfy_prompt, ["POST"]),
        ("/history/{prompt_id}", comfy_history, ["GET"]),
        ("/view", comfy_view, ["GET"]),
        ("/system_stats", comfy_stats, ["GET"]),
        ("/interrupt", interrupt, ["POST"]),
        ("/queue", comfy_queue, ["POST"]),
    ],
}


def app(kind: str, gpu: str, models: list[str], latency: float) -> Starlette:
    global S
    S = State(kind, gpu, models, latency)
    routes = [Route(p, guard(h), methods=m) for p, h, m in ROUTES[kind]]
    routes += [Route("/_control", control, methods=["POST"]), Route("/_stats", stats)]
    return Starlette(routes=routes)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kind", choices=sorted(ROUTES), required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--gpu", default="0")
    parser.add_argument("--models", default="")
    parser.add_argument("--latency", type=float, default=0.05)
    args = parser.parse_args()
    models = [m for m in args.models.split(",") if m]
    uvicorn.run(
        app(args.kind, args.gpu, models, args.latency),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
