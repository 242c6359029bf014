"""HTTP clients of the three worker kinds, speaking each one's documented API.

- Ollama: ``/api/generate`` and ``/api/chat`` (streamed NDJSON, so a cancel or deadline stops
  between chunks; over :class:`pai_gpu_jobs.streams.Streams`), ``/api/tags`` (models),
  ``/api/ps`` (loaded models and VRAM).
- AUTOMATIC1111: ``/sdapi/v1/txt2img`` / ``img2img`` (base64 images), ``/sdapi/v1/sd-models``,
  ``/sdapi/v1/progress``, ``/sdapi/v1/memory``, ``/sdapi/v1/interrupt``.
- ComfyUI: ``/prompt`` with a txt2img graph, ``/history/{id}`` until it completes,
  ``/view`` for each image, ``/object_info/CheckpointLoaderSimple`` (models),
  ``/system_stats``, ``/interrupt``.

A failure of the worker (refused, reset, 5xx, malformed answer) raises :class:`WorkerFailed`,
so the manager retries the job on another worker; :class:`Stopped` means cancel or deadline.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from pai_gpu_jobs.ledger import Job
from pai_gpu_jobs.models import WorkerConfig
from pai_gpu_jobs.streams import Streams

__all__ = ["Output", "RunControl", "Stopped", "WorkerClient", "WorkerFailed", "make_client"]


class WorkerFailed(Exception):
    """The worker failed this attempt; another worker may succeed."""


class Stopped(Exception):
    """The attempt was stopped: cancelled, or past its deadline."""


@dataclass
class RunControl:
    cancel: threading.Event = field(default_factory=threading.Event)
    deadline: float | None = None
    on_chunk: Callable[[dict[str, Any]], None] | None = None
    timeout_s: float = 600.0

    def check(self) -> None:
        if self.cancel.is_set():
            raise Stopped("cancelled")
        if self.deadline is not None and time.time() >= self.deadline:
            raise Stopped("deadline exceeded while running")

    def timeout(self) -> float:
        if self.deadline is None:
            return self.timeout_s
        return max(0.05, min(self.timeout_s, self.deadline - time.time()))


@dataclass
class Output:
    text: str | None = None
    images: list[bytes] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


class WorkerClient:
    """Common HTTP plumbing; subclasses speak one worker's API."""

    def __init__(self, cfg: WorkerConfig, timeout_s: float = 600.0) -> None:
        self.cfg = cfg
        self.http = httpx.Client(base_url=cfg.url, timeout=httpx.Timeout(10.0, read=timeout_s))

    def close(self) -> None:
        self.http.close()

    def _get(self, path: str, timeout: float = 5.0, **params: Any) -> Any:
        try:
            resp = self.http.get(path, params=params or None, timeout=timeout)
        except httpx.HTTPError as exc:
            raise WorkerFailed(f"{self.cfg.name}: GET {path} failed: {exc!r}") from exc
        return self._json(resp, path)

    def _post(self, path: str, body: Any, timeout: float) -> Any:
        try:
            resp = self.http.post(path, json=body, timeout=timeout)
        except httpx.TimeoutException as exc:
            raise WorkerFailed(f"{self.cfg.name}: POST {path} timed out") from exc
        except httpx.HTTPError as exc:
            raise WorkerFailed(f"{self.cfg.name}: POST {path} failed: {exc!r}") from exc
        return self._json(resp, path)

    def _json(self, resp: httpx.Response, path: str) -> Any:
        if resp.status_code >= 400:
            raise WorkerFailed(
                f"{self.cfg.name}: {path} answered HTTP {resp.status_code}: {resp.text[:200]}"
            )
        try:
            return resp.json()
        except ValueError as exc:
            raise WorkerFailed(f"{self.cfg.name}: {path} answered no JSON") from exc

    def models(self) -> list[str]:
        raise NotImplementedError

    def report(self) -> dict[str, Any]:
        raise NotImplementedError

    def run(self, job: Job, ctl: RunControl) -> Output:
        raise NotImplementedError

    def interrupt(self) -> None:
        """Ask the worker to stop what it is doing (no-op where closing the stream suffices)."""


class OllamaClient(WorkerClient):
    def models(self) -> list[str]:
        return [m["name"] for m in self._get("/api/tags").get("models", [])]

    def report(self) -> dict[str, Any]:
        ps = self._get("/api/ps").get("models", [])
        return {
            "loaded_models": [
                {"name": m.get("name"), "size_vram": m.get("size_vram"), "size": m.get("size")}
                for m in ps
            ],
            "vram_used_bytes": sum(int(m.get("size_vram") or 0) for m in ps),
        }

    def request_body(self, job: Job) -> tuple[str, dict[str, Any]]:
        p = job.params
        body: dict[str, Any] = {"model": job.model, "stream": True}
        if p.get("options"):
            body["options"] = p["options"]
        if job.kind == "llm.chat":
            body["messages"] = p["messages"]
            return "/api/chat", body
        body["prompt"] = p["prompt"]
        if p.get("system"):
            body["system"] = p["system"]
        return "/api/generate", body

    def __init__(self, cfg: WorkerConfig, timeout_s: float = 600.0) -> None:
        super().__init__(cfg, timeout_s)
        self.streams = Streams(cfg.url)

    def close(self) -> None:
        super().close()
        self.streams.close()

    def run(self, job: Job, ctl: RunControl) -> Output:
        path, body = self.request_body(job)
        parts: list[str] = []
        last: dict[str, Any] = {}
        try:
            with self.streams.post(path, body, ctl.timeout()) as resp:
                if resp.status >= 400:
                    text = resp.read().decode(errors="replace")
                    raise WorkerFailed(
                        f"{self.cfg.name}: {path} answered HTTP {resp.status}: {text[:200]}"
                    )
                for line in self.streams.lines(resp):
                    ctl.check()
                    if not line.strip():
                        continue
                    chunk = json.loads(line)
                    if "error" in chunk:
                        raise WorkerFailed(f"{self.cfg.name}: {chunk['error']}")
                    if job.kind == "llm.chat":
                        parts.append(chunk.get("message", {}).get("content", ""))
                    else:
                        parts.append(chunk.get("response", ""))
                    if ctl.on_chunk is not None:
                        ctl.on_chunk(chunk)
                    last = chunk
        except TimeoutError as exc:
            ctl.check()
            raise WorkerFailed(f"{self.cfg.name}: {path} timed out") from exc
        except (OSError, http.client.HTTPException, json.JSONDecodeError) as exc:
            raise WorkerFailed(f"{self.cfg.name}: {path} broke off: {exc!r}") from exc
        if not last.get("done"):
            raise WorkerFailed(f"{self.cfg.name}: {path} ended before its final chunk")
        info: dict[str, Any] = {
            k: last[k]
            for k in ("done_reason", "eval_count", "prompt_eval_count", "total_duration")
            if k in last
        }
        return Output(text="".join(parts), info=info)


class A1111Client(WorkerClient):
    def models(self) -> list[str]:
        return [m["model_name"] for m in self._get("/sdapi/v1/sd-models")]

    def report(self) -> dict[str, Any]:
        memory = self._get("/sdapi/v1/memory")
        progress = self._get("/sdapi/v1/progress", skip_current_image="true")
        cuda = memory.get("cuda", {})
        return {
            "cuda": cuda if cuda else "unavailable",
            "ram": memory.get("ram", "unavailable"),
            "progress": progress.get("progress"),
            "job_count": (progress.get("state") or {}).get("job_count"),
        }

    def run(self, job: Job, ctl: RunControl) -> Output:
        p = job.params
        body: dict[str, Any] = {
            "prompt": p["prompt"],
            "negative_prompt": p.get("negative_prompt", ""),
            "steps": p["steps"],
            "width": p["width"],
            "height": p["height"],
            "batch_size": p["count"],
            "n_iter": 1,
            "seed": p.get("seed", -1),
            "cfg_scale": p.get("cfg_scale", 7.0),
        }
        if job.model:
            body["override_settings"] = {"sd_model_checkpoint": job.model}
        path = "/sdapi/v1/txt2img"
        if job.kind == "image.img2img":
            path = "/sdapi/v1/img2img"
            body["init_images"] = [p["init_image_b64"]]
            body["denoising_strength"] = p.get("denoise", 0.75)
        ctl.check()
        answer = self._post(path, body, ctl.timeout())
        ctl.check()
        try:
            images = [base64.b64decode(b, validate=True) for b in answer["images"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise WorkerFailed(f"{self.cfg.name}: {path} returned malformed images") from exc
        info = answer.get("info")
        parsed = json.loads(info) if isinstance(info, str) and info.startswith("{") else {}
        return Output(images=images, info={"seed": parsed.get("seed"), "steps": p["steps"]})

    def interrupt(self) -> None:
        with contextlib.suppress(httpx.HTTPError):
            self.http.post("/sdapi/v1/interrupt", timeout=5)


class ComfyUIClient(WorkerClient):
    poll_s = 0.05

    def models(self) -> list[str]:
        info = self._get("/object_info/CheckpointLoaderSimple")
        names = info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0]
        return [str(n) for n in names]

    def report(self) -> dict[str, Any]:
        stats = self._get("/system_stats")
        return {"devices": stats.get("devices", []), "system": stats.get("system", {})}

    def graph(self, job: Job) -> dict[str, Any]:
        p = job.params
        seed = p.get("seed")
        return {
            "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": job.model}},
            "6": {
                "class_type": "CLIPTextEncode",
                "inputs": {"text": p["prompt"], "clip": ["4", 1]},
            },
            "7": {
                "class_type": "CLIPTextEncode",
                "inputs": {"text": p.get("negative_prompt", ""), "clip": ["4", 1]},
            },
            "5": {
                "class_type": "EmptyLatentImage",
                "inputs": {"width": p["width"], "height": p["height"], "batch_size": p["count"]},
            },
            "3": {
                "class_type": "KSampler",
                "inputs": {
                    "seed": seed if seed is not None and seed >= 0 else 0,
                    "steps": p["steps"],
                    "cfg": p.get("cfg_scale", 7.0),
                    "sampler_name": "euler",
                    "scheduler": "normal",
                    "denoise": 1.0,
                    "model": ["4", 0],
                    "positive": ["6", 0],
                    "negative": ["7", 0],
                    "latent_image": ["5", 0],
                },
            },
            "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
            "9": {
                "class_type": "SaveImage",
                "inputs": {"filename_prefix": f"pai_{job.id}", "images": ["8", 0]},
            },
        }

    def run(self, job: Job, ctl: RunControl) -> Output:
        if job.kind != "image.txt2img":
            raise WorkerFailed(f"{self.cfg.name}: ComfyUI workers here run txt2img only")
        ctl.check()
        queued = self._post(
            "/prompt", {"prompt": self.graph(job), "client_id": uuid.uuid4().hex}, ctl.timeout()
        )
        prompt_id = queued.get("prompt_id")
        if not prompt_id or queued.get("node_errors"):
            raise WorkerFailed(f"{self.cfg.name}: /prompt refused the graph: {queued}")
        while True:
            try:
                ctl.check()
            except Stopped:
                self._forget(prompt_id)
                raise
            entry = self._get(f"/history/{prompt_id}").get(prompt_id)
            status = (entry or {}).get("status") or {}
            if entry and status.get("completed"):
                break
            if status.get("status_str") == "error":
                raise WorkerFailed(f"{self.cfg.name}: the prompt failed: {status.get('messages')}")
            time.sleep(self.poll_s)
        images = []
        for node in entry.get("outputs", {}).values():
            for ref in node.get("images", []):
                images.append(self._view(ref))
        return Output(images=images, info={"prompt_id": prompt_id, "steps": job.params["steps"]})

    def _view(self, ref: dict[str, Any]) -> bytes:
        params = {k: ref.get(k, "") for k in ("filename", "subfolder", "type")}
        try:
            resp = self.http.get("/view", params=params, timeout=30)
        except httpx.HTTPError as exc:
            raise WorkerFailed(f"{self.cfg.name}: /view failed: {exc!r}") from exc
        if resp.status_code >= 400:
            raise WorkerFailed(f"{self.cfg.name}: /view answered HTTP {resp.status_code}")
        return resp.content

    def _forget(self, prompt_id: str) -> None:
        try:
            self.http.post("/queue", json={"delete": [prompt_id]}, timeout=5)
            self.http.post("/interrupt", timeout=5)
        except httpx.HTTPError:
            pass

    def interrupt(self) -> None:
        with contextlib.suppress(httpx.HTTPError):
            self.http.post("/interrupt", timeout=5)


KINDS: dict[str, type[WorkerClient]] = {
    "ollama": OllamaClient,
    "a1111": A1111Client,
    "comfyui": ComfyUIClient,
}


def make_client(cfg: WorkerConfig, timeout_s: float = 600.0) -> WorkerClient:
    return KINDS[cfg.kind](cfg, timeout_s)
