"""Fixtures shared by the whole suite: isolated PAI homes, free ports, and servers as processes.

Every server a test starts is a child process started here and stopped here, by PID, with its
temp directories removed. Nothing is left behind.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
SERVERS = ["membrane", "gitlab", "gpu_jobs", "firewall", "dns", "mail", "verify"]
NODE_BIN = ROOT / "tests" / "clients" / "node_modules" / ".bin"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(
    port: int, proc: subprocess.Popen[bytes] | None = None, timeout: float = 30
) -> None:
    """Poll until something accepts on 127.0.0.1:port (or the process dies, or time runs out)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10) -> int:
    """SIGTERM, wait, then SIGKILL: only ever the process we started. Closes its pipes."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None and not pipe.closed:
            pipe.close()
    return proc.returncode


def script(name: str) -> str:
    """Absolute path of a server's console script, e.g. ``pai-gpu-jobs`` for gpu_jobs."""
    return str(VENV_BIN / f"pai-{name.replace('_', '-')}")


@pytest.fixture(autouse=True)
def _private_pai_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Code run in the test process keeps its data (and caches) in the test's temp dir,
    never in the developer's own PAI home."""
    monkeypatch.setenv("PAI_HOME", str(tmp_path / "pai-home"))


@pytest.fixture
def pai_env(tmp_path: Path) -> dict[str, str]:
    """Environment for a server process: a private PAI_HOME, HOME and config, nothing else."""
    home = tmp_path / "home"
    home.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PAI_") and k not in ("HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME")
    }
    env.update(
        HOME=str(home),
        PAI_HOME=str(tmp_path / "pai"),
        PAI_CONFIG=str(tmp_path / "config.toml"),
        PYTHONUNBUFFERED="1",
    )
    return env


@dataclass
class RunningServer:
    name: str
    transport: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        """What the server wrote to stderr so far."""
        return self.log_path.read_text(errors="replace")

    @property
    def url(self) -> str:
        path = "/mcp" if self.transport == "http" else "/sse"
        return f"http://127.0.0.1:{self.port}{path}"


@contextmanager
def run_server(
    name: str,
    transport: str,
    env: dict[str, str],
    *,
    host: str = "127.0.0.1",
    extra_args: list[str] | None = None,
) -> Iterator[RunningServer]:
    """Start ``pai-<name>`` over http or sse on a free port; stop it by PID on exit.

    Its stderr goes to a temp file (a pipe nobody drains would block a chatty server).
    """
    port = free_port()
    cmd = [script(name), "--transport", transport, "--host", host, "--port", str(port)]
    log_dir = Path(tempfile.mkdtemp(prefix=f"pai-{name}-log-"))
    log_path = log_dir / "stderr.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen([*cmd, *(extra_args or [])], env=env, stderr=log_file)
    try:
        try:
            wait_for_port(port, proc)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"{exc}; server log:\n{log_path.read_text()[-3000:]}") from exc
        yield RunningServer(name, transport, port, proc, log_path)
    finally:
        stop_process(proc)
        shutil.rmtree(log_dir, ignore_errors=True)


@pytest.fixture
def server_factory(pai_env: dict[str, str]) -> Iterator[object]:
    """``server_factory(name, transport, env_overrides=None)`` → a started RunningServer."""
    stack: list[object] = []

    def start(name: str, transport: str, env: dict[str, str] | None = None) -> RunningServer:
        cm = run_server(name, transport, {**pai_env, **(env or {})})
        running = cm.__enter__()
        stack.append(cm)
        return running

    yield start
    for cm in reversed(stack):
        cm.__exit__(None, None, None)  # type: ignore[attr-defined]


def node_client(name: str) -> Path:
    """A binary from tests/clients/node_modules/.bin, or skip saying how to install it."""
    path = NODE_BIN / name
    if not path.exists():
        pytest.skip(
            f"npm client {name!r} not installed: run `make clients` (needs the npm registry)"
        )
    return path


def require_binary(*names: str, package: str) -> str:
    """The first of ``names`` on PATH (or /usr/sbin), else skip naming the Debian package."""
    for name in names:
        found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/lib/postfix/sbin")
        if found:
            return found
    if os.environ.get("CI") == "true":
        pytest.fail(f"{names[0]} is missing in CI: .ci/run must apt-get install {package}")
    pytest.skip(f"{names[0]} not installed: apt-get install {package}")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One clear line per group of skipped tests (same reason), so nothing is skipped silently."""
    groups: dict[str, int] = {}
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        reason = reason.removeprefix("Skipped: ")
        groups[reason] = groups.get(reason, 0) + 1
    if groups:
        terminalreporter.section("skipped groups")
        for reason, count in sorted(groups.items(), key=lambda kv: -kv[1]):
            terminalreporter.write_line(f"SKIPPED {count:>3} test(s): {reason}")


def assert_claude_sees_every_server(project: Path, env: dict[str, str]) -> None:
    """Run Claude Code's own `claude mcp list` in ``project``: every PAI server ✔ Connected."""
    claude = node_client("claude")
    env = {**env, "DISABLE_AUTOUPDATER": "1", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"}
    out = subprocess.run(
        [str(claude), "--settings", '{"enableAllProjectMcpServers": true}', "mcp", "list"],
        env=env,
        cwd=project,
        capture_output=True,
        text=True,
        timeout=180,
    )
    for name in SERVERS:  # its exit code is always 0: read the lines
        line = next((ln for ln in out.stdout.splitlines() if ln.startswith(f"pai-{name}:")), "")
        assert "✔ Connected" in line, out.stdout + out.stderr
