"""What the tests driving servers with MCP clients share.

A module gets one isolated environment and one process per (server, http|sse), started in
parallel (the start-up is mostly imports, so two cores halve the wait) and stopped by PID when
the module ends; and a raw JSON-RPC conversation with a stdio server, for the tests that must
see every byte it writes. Not a test module: the test files build their fixtures from it.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import RunningServer, run_server, script, stop_process

__all__ = [
    "INITIALIZE",
    "INITIALIZED",
    "TRANSPORTS",
    "Exchange",
    "client_env",
    "running_servers",
    "stdio_exchange",
]

TRANSPORTS = ["stdio", "sse", "http"]


def client_env(base: Path) -> dict[str, str]:
    """Environment for servers and clients alike: private PAI_HOME, HOME and config.

    HOME is private because the Inspector and Claude Code write their own state there; the
    Claude Code variables stop it from updating itself or calling home.
    """
    (base / "home").mkdir(exist_ok=True)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PAI_") and k not in ("HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME")
    }
    env.update(
        HOME=str(base / "home"),
        PAI_HOME=str(base / "pai"),
        PAI_CONFIG=str(base / "config.toml"),
        PYTHONUNBUFFERED="1",
        DISABLE_AUTOUPDATER="1",
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
    )
    return env


@contextmanager
def running_servers(
    names: Iterable[str], transports: Iterable[str], env: dict[str, str]
) -> Iterator[dict[tuple[str, str], RunningServer]]:
    """Start ``pai-<name> --transport <t>`` for every pair at once; stop them all on exit."""
    pairs = [(n, t) for n in names for t in transports]
    managers: dict[tuple[str, str], AbstractContextManager[RunningServer]] = {
        pair: run_server(pair[0], pair[1], env) for pair in pairs
    }
    running: dict[tuple[str, str], RunningServer] = {}
    errors: list[BaseException] = []

    def enter(pair: tuple[str, str]) -> None:
        try:
            running[pair] = managers[pair].__enter__()
        except BaseException as exc:  # reported below, after the others are stopped
            errors.append(exc)

    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(enter, pairs))
        if errors:
            raise errors[0]
        yield running
    finally:
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda pair: managers[pair].__exit__(None, None, None), running))


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "pai-tests", "version": "0"},
    },
}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}


@dataclass
class Exchange:
    """What a stdio server wrote while it served one raw JSON-RPC conversation."""

    stdout_lines: list[str]
    stderr: str
    returncode: int

    def replies(self) -> dict[Any, dict[str, Any]]:
        """Replies by request id (every stdout line must be JSON for this to work)."""
        parsed = [json.loads(line) for line in self.stdout_lines]
        return {m["id"]: m for m in parsed if "id" in m}


def stdio_exchange(
    name: str, env: dict[str, str], messages: list[dict[str, Any] | str], timeout: float = 60
) -> Exchange:
    """Start ``pai-<name>`` over stdio, write ``messages`` (dicts as JSON, strings verbatim),
    wait until every request id is answered, close stdin and wait for the exit.

    stdin stays open until then: a stdio server drops requests still in flight when it closes.
    """
    wanted = {m["id"] for m in messages if isinstance(m, dict) and "id" in m}
    lines: queue.Queue[str | None] = queue.Queue()
    with tempfile.TemporaryFile() as stderr_file:
        proc = subprocess.Popen(
            [script(name)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr_file,
            text=True,
        )
        assert proc.stdin is not None and proc.stdout is not None
        stdout = proc.stdout

        def read() -> None:
            for line in stdout:
                lines.put(line)
            lines.put(None)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        seen: list[str] = []
        try:
            for message in messages:
                proc.stdin.write(message if isinstance(message, str) else json.dumps(message))
                proc.stdin.write("\n")
            proc.stdin.flush()
            deadline = time.monotonic() + timeout
            answered: set[Any] = set()
            while wanted - answered:
                try:
                    line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
                except queue.Empty:
                    break  # out of time: the caller's assertions say which replies are missing
                if line is None:
                    break  # stdout closed early: likewise
                seen.append(line)
                with contextlib.suppress(ValueError, AttributeError):
                    answered.add(json.loads(line).get("id"))
            proc.stdin.close()
            returncode = proc.wait(timeout)
            reader.join(timeout)
            while not lines.empty():
                rest = lines.get_nowait()
                if rest is not None:
                    seen.append(rest)
        finally:
            stop_process(proc)  # type: ignore[arg-type]
        stderr_file.seek(0)
        stderr = stderr_file.read().decode(errors="replace")
    return Exchange([s for s in seen if s.strip()], stderr, returncode)
