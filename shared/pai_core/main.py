"""The composition root: read settings, configure logging, build a server, serve it.

Every server's console script (``pai-dns``, …) and ``pai serve NAME`` end here.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from pai_core.errors import PaiError
from pai_core.log import configure_logging, register_secret
from pai_core.settings import ServerSettings, load_settings
from pai_core.spec import ServerSpec

__all__ = ["console_main", "run_spec", "shared_token"]

log = logging.getLogger(__name__)


def shared_token(settings: ServerSettings) -> str | None:
    """The bearer token for HTTP: the server's own ``PAI_<NAME>_HTTP_TOKEN`` (or ``http_token``
    in the config file), else ``PAI_HTTP_TOKEN``, which ``pai up`` hands to every server."""
    if settings.http_token is not None:
        return settings.http_token.get_secret_value()
    return os.environ.get("PAI_HTTP_TOKEN")


def run_spec(
    spec: ServerSpec,
    *,
    transport: str = "stdio",
    host: str = "127.0.0.1",
    port: int = 8000,
    config_file: Path | None = None,
) -> int:
    """Build and serve ``spec``; return the process exit code."""
    from pai_core.runtime import serve

    try:
        settings = load_settings(spec.settings_cls(), config_file)
        configure_logging(settings.log_level)
        token = shared_token(settings)
        register_secret(token)
        server = spec.build(settings)
        serve(
            server,
            transport,  # type: ignore[arg-type]
            host=host,
            port=port,
            token=token,
            allowed_origins=settings.allowed_origins,
        )
    except PaiError as exc:
        print(f"pai-{spec.name}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    return 0


def console_main(spec: ServerSpec, argv: list[str] | None = None) -> int:
    """``pai-<name> [--transport stdio|http|sse] [--host H] [--port P] [--config FILE]``."""
    parser = argparse.ArgumentParser(prog=f"pai-{spec.name}", description=spec.description)
    parser.add_argument("--transport", choices=["stdio", "http", "sse"], default="stdio")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--config", type=Path, default=None, help="config file (TOML)")
    args = parser.parse_args(argv)
    return run_spec(
        spec, transport=args.transport, host=args.host, port=args.port, config_file=args.config
    )
