"""The GPU jobs MCP server: tool declarations only; logic lives in services."""

from __future__ import annotations

from typing import Any

from mcp.server import MCPServer

from pai_core.app import add_health_tool, create_server
from pai_gpu_jobs import __version__
from pai_gpu_jobs.settings import GpuJobsSettings

__all__ = ["build_server"]

INSTRUCTIONS = """The one fair queue for GPU work over Ollama and Stable Diffusion workers."""


def _probe(settings: GpuJobsSettings) -> dict[str, Any]:
    workers = len(settings.ollama_urls) + len(settings.sd_urls)
    return {
        "backend": "sqlite-queue",
        "configured": workers > 0,
        "problems": []
        if workers
        else ["no workers: set PAI_GPU_JOBS_OLLAMA_URLS or PAI_GPU_JOBS_SD_URLS"],
        "details": {
            "ollama_workers": len(settings.ollama_urls),
            "sd_workers": len(settings.sd_urls),
        },
    }


def build_server(settings: GpuJobsSettings) -> MCPServer[Any]:
    """Compose the server from its settings (the composition root calls this)."""
    server = create_server(
        "gpu_jobs", version=__version__, instructions=INSTRUCTIONS, settings=settings
    )
    add_health_tool(server, version=__version__, settings=settings, probe=lambda: _probe(settings))
    return server
