"""A tiny server built on pai_core with one slow tool, to test shutdown during a call.

Run: ``python slow_server.py [--transport stdio|http] [--port P]``.
"""

from __future__ import annotations

import argparse
import logging
from typing import Annotated

import anyio
from pydantic import Field

from pai_core.annotations import READ_ONLY
from pai_core.app import create_server, tool
from pai_core.log import configure_logging
from pai_core.runtime import serve
from pai_core.settings import ServerSettings

log = logging.getLogger("slow_server")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--transport", default="stdio")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    configure_logging("INFO")
    server = create_server("slow", version="0", instructions="test", settings=ServerSettings())

    @tool(server, READ_ONLY)
    async def nap(seconds: Annotated[float, Field(ge=0, le=60)]) -> str:
        """Sleep, then answer."""
        log.info("napping %s", seconds)
        await anyio.sleep(seconds)
        log.info("woke up")
        return f"slept {seconds}"

    serve(server, args.transport, port=args.port)


if __name__ == "__main__":
    main()
