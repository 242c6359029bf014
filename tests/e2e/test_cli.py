"""The `pai` command as a user runs it: list, doctor, serve, up, config."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.conftest import SERVERS, VENV_BIN, stop_process

PAI = str(VENV_BIN / "pai")


def _run(args: list[str], env: dict[str, str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PAI, *args], env=env, capture_output=True, text=True, timeout=180, check=False, **kw
    )


def test_list_shows_every_installed_server(pai_env: dict[str, str]) -> None:
    out = _run(["list", "--json"], pai_env)
    assert out.returncode == 0, out.stderr
    names = [row["name"] for row in json.loads(out.stdout)]
    assert names == sorted(SERVERS)
    plain = _run(["list"], pai_env)
    assert all(name in plain.stdout for name in SERVERS)


def test_serve_unknown_server_says_what_is_installed(pai_env: dict[str, str]) -> None:
    out = _run(["serve", "nosuch"], pai_env)
    assert out.returncode == 2
    assert "no server named 'nosuch'" in out.stderr and "membrane" in out.stderr


def test_doctor_passes_on_defaults_and_warns_about_unconfigured(pai_env: dict[str, str]) -> None:
    out = _run(["doctor", "dns"], pai_env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "mcp SDK" in out.stdout
    assert "unconfigured" in out.stdout and "PAI_DNS_ZONES" in out.stdout


def test_doctor_fails_on_a_broken_config_file(pai_env: dict[str, str], tmp_path: Path) -> None:
    Path(pai_env["PAI_CONFIG"]).write_text("[dns\nbroken")
    out = _run(["doctor", "dns"], pai_env)
    assert out.returncode == 1
    assert "cannot read config file" in out.stdout


def test_doctor_fails_on_an_invalid_setting(pai_env: dict[str, str]) -> None:
    out = _run(["doctor", "dns"], {**pai_env, "PAI_DNS_PORT": "fifty-three"})
    assert out.returncode == 1
    assert "port" in out.stdout


def test_config_prints_stdio_entries_for_both_clients(pai_env: dict[str, str]) -> None:
    code = json.loads(_run(["config", "claude-code"], pai_env).stdout)
    desktop = json.loads(_run(["config", "claude-desktop"], pai_env).stdout)
    assert set(code["mcpServers"]) == {f"pai-{n}" for n in SERVERS}
    entry = code["mcpServers"]["pai-dns"]
    assert entry["type"] == "stdio" and Path(entry["command"]).is_absolute()
    assert Path(entry["command"]).exists()
    assert "type" not in desktop["mcpServers"]["pai-dns"]


def test_up_starts_all_checks_health_writes_mcp_json_and_stops(
    pai_env: dict[str, str], tmp_path: Path
) -> None:
    proc = subprocess.Popen(
        [PAI, "up", "--mcp-json", str(tmp_path / ".mcp.json")],
        env=pai_env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "PAI is up" in line:
                break
        text = "".join(lines)
        assert proc.stderr is not None
        assert "PAI is up" in text, text + (proc.stderr.read() if proc.poll() is not None else "")
        for name in SERVERS:
            assert f"{name} " in text
        assert "FAILED" not in text
        config = json.loads((tmp_path / ".mcp.json").read_text())
        assert set(config["mcpServers"]) == {f"pai-{n}" for n in SERVERS}
        urls = [entry["url"] for entry in config["mcpServers"].values()]
        assert all(u.startswith("http://127.0.0.1:") and u.endswith("/mcp") for u in urls)
        children = _children(proc.pid)
        assert len(children) == len(SERVERS)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(pid) for pid in children):
            time.sleep(0.1)
        assert not any(_alive(pid) for pid in children), "pai up left servers running"
    finally:
        stop_process(proc)  # type: ignore[arg-type]


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_module_entry_point_matches_console_script(pai_env: dict[str, str]) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pai_core.cli", "--version"],
        env=pai_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0 and out.stdout.startswith("pai ")


def test_claude_code_sees_every_server_of_pai_up(pai_env: dict[str, str], tmp_path: Path) -> None:
    """`make run` then `claude mcp list` in the same directory: every server ✔ Connected."""
    from tests.conftest import assert_claude_sees_every_server, node_client

    node_client("claude")  # skip before starting anything if the client is not installed
    proc = _pai_up([], pai_env, tmp_path)
    try:
        seen = _until_up(proc)
        assert "PAI is up" in seen, seen
        assert_claude_sees_every_server(tmp_path, pai_env)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        finally:
            stop_process(proc)  # type: ignore[arg-type]


def _pai_up(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PAI, "up", *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _until_up(proc: subprocess.Popen[str], timeout: float = 150) -> str:
    """What ``pai up`` printed until its "PAI is up" line (or until it stopped printing)."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < deadline and "PAI is up" not in seen:
        line = proc.stdout.readline()
        if not line:
            break
        seen += line
    return seen


def _stderr_lines(proc: subprocess.Popen[str], seen: list[str], until: str, count: int) -> None:
    """Read pai up's stderr into ``seen`` until ``until`` appears in ``count`` lines."""
    import select

    assert proc.stderr is not None
    deadline = time.monotonic() + 30
    while sum(until in line for line in seen) < count:
        assert time.monotonic() < deadline, f"no {until!r} on stderr: {''.join(seen)}"
        ready, _, _ = select.select([proc.stderr], [], [], 0.2)
        if ready:
            line = proc.stderr.readline()
            assert line, f"pai up ended early: {''.join(seen)}"
            seen.append(line)


def test_up_reports_a_dead_server_once_with_its_log(
    pai_env: dict[str, str], tmp_path: Path
) -> None:
    proc = _pai_up(["--only", "dns", "--only", "mail", "--mcp-json", "m.json"], pai_env, tmp_path)
    try:
        assert "PAI is up" in _until_up(proc), "pai up did not come up"
        children = sorted(_children(proc.pid))
        assert len(children) == 2
        seen: list[str] = []
        os.kill(children[0], signal.SIGKILL)
        _stderr_lines(proc, seen, "it is not restarted", 1)
        # The second death is seen at a later tick of pai up's watch loop: the first death
        # must not be reported again there (it used to be, every second).
        os.kill(children[1], signal.SIGKILL)
        _stderr_lines(proc, seen, "it is not restarted", 2)
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
        assert proc.stderr is not None
        text = "".join(seen) + proc.stderr.read()
    finally:
        stop_process(proc)  # type: ignore[arg-type]
    reports = [line for line in text.splitlines() if "it is not restarted" in line]
    assert len(reports) == 2, text
    assert {r.split()[2] for r in reports} == {"dns", "mail"}, reports
    assert all("was killed by signal 9" in r and "Last lines of" in r for r in reports), reports
    assert "  | " in text  # the end of the server's log follows
