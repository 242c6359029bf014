"""The composition root: read settings, configure logging, build a server, serve it.

Every server's console script (``pai-dns``, …) and ``pai serve NAME`` end here. Over stdio,
when an earlier start recorded the handshake (:mod:`pai_core.fastfront`), the front answers
``initialize`` and ``tools/list`` while everything below loads in the background; so this
module imports the settings, the SDK and the runtime only inside :func:`_build`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pai_core.errors import PaiError
from pai_core.spec import ServerSpec

if TYPE_CHECKING:
    from mcp.server import MCPServer

    from pai_core.settings import ServerSettings

__all__ = ["console_main", "run_spec", "shared_token"]


def shared_token(settings: ServerSettings) -> str | None:
    """The bearer token for HTTP: the server's own ``PAI_<NAME>_HTTP_TOKEN`` (or ``http_token``
    in the config file), else ``PAI_HTTP_TOKEN``, which ``pai up`` hands to every server."""
    if settings.http_token is not None:
        return settings.http_token.get_secret_value()
    return os.environ.get("PAI_HTTP_TOKEN")


def _build(
    spec: ServerSpec, config_file: Path | None
) -> tuple[ServerSettings, str | None, MCPServer[Any]]:
    """Settings, logging, token and the server: everything before serving."""
    import pai_core.runtime  # noqa: F401  # loaded here, in the background behind a front
    from pai_core.log import configure_logging, register_secret
    from pai_core.settings import load_settings

    settings = load_settings(spec.settings_cls(), config_file)
    configure_logging(settings.log_level)
    token = shared_token(settings)
    register_secret(token)
    return settings, token, spec.build(settings)


def run_spec(
    spec: ServerSpec,
    *,
    transport: str = "stdio",
    host: str = "127.0.0.1",
    port: int = 8000,
    config_file: Path | None = None,
) -> int:
    """Build and serve ``spec``; return the process exit code."""
    try:
        if transport == "stdio":
            from pai_core.fastfront import open_front

            front = open_front(spec.name, config_file)
            if front is not None:
                outcome = front.run(lambda: _build(spec, config_file))
                if outcome is None:
                    return 0  # the client left; everything it asked was answered
                (_, _, server), handoff = outcome
                from pai_core.runtime import serve

                serve(server, "stdio", handoff=handoff)
                return 0
        settings, token, server = _build(spec, config_file)
        from pai_core.runtime import serve

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
