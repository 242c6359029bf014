"""The ``pai`` command: serve, list, doctor, up, config.

``pai up`` starts every installed server over Streamable HTTP on loopback ports as child
processes, proves each with a real MCP call (``health``), prints a table, writes a project
``.mcp.json`` for Claude Code, and stops them all on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from pai_core import __version__
from pai_core.spec import Check, ServerSpec, discover_servers

__all__ = ["app", "main"]

app = typer.Typer(
    name="pai",
    help="PAI: MCP servers for memory and verified infrastructure changes.",
    no_args_is_help=True,
    add_completion=False,
)

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="Config file (TOML).")]


def _err(message: str) -> None:
    typer.echo(message, err=True)


def _spec(name: str) -> ServerSpec:
    servers = discover_servers()
    if name not in servers:
        known = ", ".join(servers) or "none"
        _err(f"pai: no server named {name!r} is installed (installed: {known})")
        raise typer.Exit(2)
    return servers[name]


@app.command()
def serve(
    name: Annotated[str, typer.Argument(help="Server name, e.g. membrane (see `pai list`).")],
    transport: Annotated[str, typer.Option(help="stdio | http | sse")] = "stdio",
    host: Annotated[str, typer.Option(help="Bind address for http/sse.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port for http/sse.")] = 8000,
    config: ConfigOpt = None,
) -> None:
    """Run one server (stdio by default; http serves /mcp, sse serves /sse)."""
    if transport not in ("stdio", "http", "sse"):
        _err(f"pai: unknown transport {transport!r}: use stdio, http or sse")
        raise typer.Exit(2)
    from pai_core.main import run_spec

    raise typer.Exit(
        run_spec(_spec(name), transport=transport, host=host, port=port, config_file=config)
    )


@app.command("list")
def list_servers(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the installed servers (entry points in group pai.servers)."""
    servers = discover_servers()
    if as_json:
        rows = [
            {"name": s.name, "version": s.version, "description": s.description}
            for s in servers.values()
        ]
        typer.echo(json.dumps(rows, indent=2))
        return
    width = max((len(n) for n in servers), default=4)
    for spec in servers.values():
        typer.echo(f"{spec.name:<{width}}  {spec.version:<8} {spec.description}")


def _doctor_checks(spec: ServerSpec, config: Path | None) -> list[Check]:
    from pai_core.errors import PaiError
    from pai_core.settings import load_settings

    try:
        settings = load_settings(spec.settings_cls(), config)
    except PaiError as exc:
        return [Check("settings", "fail", str(exc))]
    checks = [Check("settings", "ok", "loaded")]
    try:
        server = spec.build(settings)
    except Exception as exc:  # an import or construction failure is exactly what doctor reports
        return [*checks, Check("build", "fail", f"{type(exc).__name__}: {exc}")]
    checks.append(Check("build", "ok", f"{server.name} {server.version}"))
    health = _call_health_inproc(server)
    status = health.get("status", "error")
    detail = f"backend {health.get('backend')}"
    if health.get("problems"):
        detail += "; " + "; ".join(health["problems"])
    level = {"ok": "ok", "degraded": "warn", "unconfigured": "warn"}.get(status, "fail")
    checks.append(Check("health", level, f"{status}: {detail}"))  # type: ignore[arg-type]
    try:
        checks.extend(spec.checks(settings))
    except Exception as exc:
        checks.append(Check("backend", "fail", f"{type(exc).__name__}: {exc}"))
    return checks


def _call_health_inproc(server: Any) -> dict[str, Any]:
    import anyio

    async def call() -> dict[str, Any]:
        result = await server.call_tool("health", {})
        return dict(result.structured_content or {})

    try:
        return anyio.run(call)
    except Exception as exc:
        return {"status": "error", "backend": "?", "problems": [f"health failed: {exc}"]}


def _memory_checks(config: Path | None) -> list[Check]:
    from pai_core.errors import PaiError
    from pai_core.memory.backends import memory_checks

    try:
        return memory_checks(_memory_settings(config))
    except PaiError as exc:
        return [Check("memory", "fail", str(exc))]


@app.command()
def doctor(
    name: Annotated[str | None, typer.Argument(help="Only this server.")] = None,
    config: ConfigOpt = None,
) -> None:
    """Check configuration, backends and versions; exit 1 if anything fails."""
    import platform

    specs = [_spec(name)] if name else list(discover_servers().values())
    typer.echo(f"pai {__version__} on Python {platform.python_version()}")
    try:
        from importlib.metadata import version

        typer.echo(f"mcp SDK {version('mcp')}")
    except Exception:
        typer.echo("mcp SDK: not installed")
    failed = False
    marks = {"ok": "✔", "warn": "!", "fail": "✘"}
    typer.echo("\nmemory")
    for check in _memory_checks(config):
        failed |= check.status == "fail"
        typer.echo(f"  {marks[check.status]} {check.name}: {check.detail}")
    for spec in specs:
        typer.echo(f"\n{spec.name} {spec.version}")
        for check in _doctor_checks(spec, config):
            failed |= check.status == "fail"
            typer.echo(f"  {marks[check.status]} {check.name}: {check.detail}")
    if failed:
        _err("\npai doctor: problems found (✘ above)")
        raise typer.Exit(1)


def _free_port(start: int) -> int:
    port = start
    while port < start + 1000:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
                return port
            except OSError:
                port += 1
    raise RuntimeError(f"no free port in {start}..{start + 1000}")


@dataclass
class _Child:
    spec: ServerSpec
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"


async def _probe_http(url: str, deadline: float, token: str | None) -> dict[str, Any]:
    import anyio
    import httpx2
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    last: Exception | None = None
    headers = {"Authorization": f"Bearer {token}"} if token else None
    while time.monotonic() < deadline:
        try:
            async with (
                httpx2.AsyncClient(headers=headers, timeout=10) as http,
                streamable_http_client(url, http_client=http) as (read, write),
                ClientSession(read, write) as session,
            ):
                await session.initialize()
                result = await session.call_tool("health", {})
                return dict(result.structured_content or {})
        except Exception as exc:  # not up yet: retry until the deadline
            last = exc
            await anyio.sleep(0.2)
    raise TimeoutError(f"no MCP answer from {url}: {last}")


def stop_children(children: list[_Child], timeout: float = 10.0) -> None:
    """SIGTERM every child, wait, then SIGKILL what is left."""
    for child in children:
        if child.proc.poll() is None:
            child.proc.send_signal(signal.SIGTERM)
    end = time.monotonic() + timeout
    for child in children:
        try:
            child.proc.wait(max(0.1, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.proc.kill()
            child.proc.wait()


def mcp_json_http(children: list[_Child], token_env: str | None) -> dict[str, Any]:
    servers: dict[str, Any] = {}
    for child in children:
        entry: dict[str, Any] = {"type": "http", "url": child.url}
        if token_env:
            entry["headers"] = {"Authorization": f"Bearer ${{{token_env}}}"}
        servers[f"pai-{child.spec.name}"] = entry
    return {"mcpServers": servers}


def _death_report(child: _Child, log_path: Path, lines: int = 15) -> str:
    """What ``pai up`` says, once, when a server dies: its exit, that it is not restarted, and
    the end of its log."""
    code = child.proc.returncode
    how = f"was killed by signal {-code}" if code < 0 else f"exited with {code}"
    try:
        tail = log_path.read_text(errors="replace").splitlines()[-lines:]
    except OSError as exc:
        tail = [f"(cannot read {log_path}: {exc})"]
    body = "\n".join(f"  | {line}" for line in tail) or "  | (the log is empty)"
    return (
        f"pai up: {child.spec.name} {how}; it is not restarted (the other servers keep "
        f"running; restart pai up to bring it back). Last lines of {log_path}:\n{body}"
    )


@app.command()
def up(
    base_port: Annotated[int, typer.Option(help="First port to try.")] = 8765,
    mcp_json: Annotated[Path, typer.Option(help="Where to write the Claude Code config.")] = Path(
        ".mcp.json"
    ),
    only: Annotated[list[str] | None, typer.Option("--only", help="Start only these.")] = None,
    config: ConfigOpt = None,
    exit_after_check: Annotated[
        bool, typer.Option("--check", help="Stop everything after the health table.")
    ] = False,
) -> None:
    """Start every installed server over Streamable HTTP on loopback; Ctrl-C stops them all."""
    import anyio

    specs = [s for s in discover_servers().values() if not only or s.name in only]
    if not specs:
        _err("pai up: no servers installed")
        raise typer.Exit(2)
    children: list[_Child] = []
    stopping = False

    def on_signal(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True
        raise KeyboardInterrupt

    port = base_port
    token = os.environ.get("PAI_HTTP_TOKEN")
    from pai_core.errors import ConfigError
    from pai_core.runtime import check_token
    from pai_core.settings import pai_home

    try:
        check_token(token, "PAI_HTTP_TOKEN")
    except ConfigError as exc:
        _err(f"pai up: {exc}")
        raise typer.Exit(2) from exc
    signal.signal(signal.SIGTERM, on_signal)

    log_dir = pai_home() / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    try:
        for spec in specs:
            port = _free_port(port)
            cmd = [
                sys.executable,
                "-m",
                "pai_core.cli",
                "serve",
                spec.name,
                "--transport",
                "http",
                "--port",
                str(port),
            ]
            if config:
                cmd += ["--config", str(config)]
            env = dict(os.environ)
            if token:
                env[f"PAI_{spec.name.upper()}_HTTP_TOKEN"] = token
            with (log_dir / f"{spec.name}.log").open("ab") as log_file:
                proc = subprocess.Popen(cmd, env=env, stdout=log_file, stderr=log_file)
            children.append(_Child(spec, port, proc))
            port += 1
        rows = []
        failed = False
        for child in children:
            try:
                health = anyio.run(_probe_http, child.url, time.monotonic() + 60, token)
                rows.append(
                    (
                        child.spec.name,
                        child.url,
                        str(health.get("backend", "?")),
                        str(health.get("status", "?")),
                    )
                )
            except Exception as exc:
                failed = True
                code = child.proc.poll()
                why = f"exited {code}" if code is not None else str(exc)[:60]
                rows.append((child.spec.name, child.url, "-", f"FAILED ({why})"))
        widths = [
            max(len(r[i]) for r in [("server", "url", "backend", "status"), *rows])
            for i in range(4)
        ]
        for row in [("server", "url", "backend", "status"), *rows]:
            typer.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
        mcp_json.write_text(
            json.dumps(mcp_json_http(children, "PAI_HTTP_TOKEN" if token else None), indent=2)
            + "\n"
        )
        typer.echo(
            f"\nwrote {mcp_json} for Claude Code (`claude mcp list` in this directory shows them)"
        )
        typer.echo(f"server logs: {log_dir}/<name>.log")
        if failed:
            raise typer.Exit(1)
        if exit_after_check:
            return
        typer.echo("PAI is up. Press Ctrl-C to stop every server.")
        reported: set[str] = set()
        while True:
            for child in children:
                if (
                    child.proc.poll() is not None
                    and not stopping
                    and child.spec.name not in reported
                ):
                    reported.add(child.spec.name)
                    _err(_death_report(child, log_dir / f"{child.spec.name}.log"))
            time.sleep(1)
    except KeyboardInterrupt:
        typer.echo("\nstopping…", err=True)
    finally:
        stop_children(children)


@app.command("config")
def config_cmd(
    target: Annotated[str, typer.Argument(help="claude-code | claude-desktop")] = "claude-code",
) -> None:
    """Print a stdio config for Claude Code (.mcp.json) or Claude Desktop."""
    servers: dict[str, Any] = {}
    for spec in discover_servers().values():
        script = Path(sys.executable).parent / f"pai-{spec.name.replace('_', '-')}"
        entry: dict[str, Any] = {"command": str(script), "args": []}
        if target == "claude-code":
            entry = {"type": "stdio", **entry}
        servers[f"pai-{spec.name}"] = entry
    typer.echo(json.dumps({"mcpServers": servers}, indent=2))


memory_app = typer.Typer(
    name="memory", help="The shared memory: move it between backends.", no_args_is_help=True
)
app.add_typer(memory_app, name="memory")


def _memory_settings(config: Path | None) -> Any:
    from pai_core.settings import ServerSettings, load_settings

    return load_settings(ServerSettings, config).memory


@memory_app.command("migrate")
def memory_migrate(
    to: Annotated[
        str,
        typer.Option("--to", help="neo4j+qdrant, or sqlite to come back to the embedded store."),
    ],
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace a target graph that is not empty.")
    ] = False,
    config: ConfigOpt = None,
) -> None:
    """Move the whole memory (graph, notes, episodes, vectors) to other backends, verified by
    counts and checksums. Stop the PAI servers first; point them at the new backends after."""
    from pai_core.errors import PaiError
    from pai_core.memory.migrate import migrate_memory, parse_target

    try:
        settings = _memory_settings(config)
        target = parse_target(to)
        report = migrate_memory(settings, target, overwrite=overwrite)
    except PaiError as exc:
        _err(f"pai memory migrate: {type(exc).__name__}: {exc}")
        raise typer.Exit(2) from exc
    typer.echo(f"from: {report.source}\nto:   {report.target}")
    width = max((len(p.kind) for p in report.parts), default=5)
    for part in report.parts:
        typer.echo(
            f"  {part.kind:<{width}} {part.count:>9,}  sha256 {part.checksum[:16]}  {part.status}"
        )
    code = 0
    if target.vectors == "qdrant":
        code = _vectors_to_qdrant(config, settings)
    typer.echo("next:")
    for step in report.next_steps:
        typer.echo(f"  - {step}")
    raise typer.Exit(code)


def _vectors_to_qdrant(config: Path | None, memory: Any) -> int:
    """Qdrant is a search index MemBrane builds from the stored vectors: run its command."""
    servers = discover_servers()
    how = "pai membrane reindex --vectors (with PAI_MEMORY_VECTOR_BACKEND=qdrant)"
    if "membrane" not in servers:
        typer.echo(f"  vectors: MemBrane is not installed; once it is, run {how}")
        return 0
    if not memory.qdrant_url:
        return 0  # local mode: built in each server process (the next steps say so)
    from pai_core.settings import load_settings

    spec = servers["membrane"]
    settings = load_settings(spec.settings_cls(), config)
    settings.memory = memory.model_copy(update={"vector_backend": "qdrant"})
    typer.echo(f"  vectors: running {how}")
    return spec.run_command("reindex", settings, ["--vectors"])


@app.callback(invoke_without_command=True)
def _root(
    show_version: Annotated[bool, typer.Option("--version", help="Print the version.")] = False,
) -> None:
    if show_version:
        typer.echo(f"pai {__version__}")
        raise typer.Exit()


def _add_server_commands() -> None:
    """``pai <server> <command> [args…]`` for every server that declares commands."""
    for spec in discover_servers().values():
        if not spec.commands:
            continue
        group = typer.Typer(name=spec.name, help=f"{spec.name} commands.", no_args_is_help=True)
        for command, help_text, _path in spec.commands:
            group.command(
                command,
                help=help_text,
                context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
            )(_server_command(spec, command))
        app.add_typer(group, name=spec.name)


def _server_command(spec: ServerSpec, command: str) -> Any:
    def run(ctx: typer.Context, config: ConfigOpt = None) -> None:
        from pai_core.errors import PaiError
        from pai_core.log import configure_logging
        from pai_core.settings import load_settings

        try:
            settings = load_settings(spec.settings_cls(), config)
            configure_logging(settings.log_level)
            code = spec.run_command(command, settings, list(ctx.args))
        except PaiError as exc:
            _err(f"pai {spec.name} {command}: {type(exc).__name__}: {exc}")
            raise typer.Exit(2) from exc
        raise typer.Exit(code)

    run.__doc__ = dict((c, h) for c, h, _ in spec.commands)[command]
    return run


def main() -> None:
    _add_server_commands()
    app()


if __name__ == "__main__":
    main()
