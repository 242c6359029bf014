"""Entry point of the GPU jobs server: its spec for `pai` and its console script."""

from __future__ import annotations

import sys

from pai_core.spec import ServerSpec
from pai_gpu_jobs import __version__

__all__ = ["SPEC", "main"]

SPEC = ServerSpec(
    name="gpu_jobs",
    version=__version__,
    description="The one fair queue for GPU work over Ollama and Stable Diffusion workers.",
    settings="pai_gpu_jobs.settings:GpuJobsSettings",
    factory="pai_gpu_jobs.server:build_server",
    commands=(
        (
            "proxy",
            "Serve an Ollama-compatible API (--port N) that enqueues into the fair queue.",
            "pai_gpu_jobs.proxy:main",
        ),
    ),
)


def main() -> None:
    """``pai-gpu-jobs [--transport stdio|http|sse] [--host H] [--port P] [--config FILE]``."""
    from pai_core.main import console_main

    sys.exit(console_main(SPEC))
