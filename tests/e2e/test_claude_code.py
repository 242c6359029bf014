"""Claude Code's own health check (``claude mcp list``) sees every server on every transport.

The project's ``.mcp.json`` is what ``pai config claude-code`` generates (stdio entries for the
installed console scripts), plus an ``sse`` and an ``http`` entry per server pointing at running
servers. ``claude mcp list`` connects to each and prints ``✔ Connected`` or ``✘ Failed to
connect``; its exit code is always 0, so the test reads the lines.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import SERVERS, VENV_BIN, RunningServer, node_client
from tests.e2e.client_fixtures import client_env, running_servers

pytestmark = pytest.mark.clients


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return client_env(tmp_path_factory.mktemp("claude-code"))


@pytest.fixture(scope="module")
def servers(env: dict[str, str]) -> Iterator[dict[tuple[str, str], RunningServer]]:
    node_client("claude")  # skip before starting servers if the client is missing
    with running_servers(SERVERS, ("http", "sse"), env) as running:
        yield running


def test_claude_code_connects_to_every_server_on_every_transport(
    servers: dict[tuple[str, str], RunningServer], env: dict[str, str], tmp_path: Path
) -> None:
    generated = subprocess.run(
        [str(VENV_BIN / "pai"), "config", "claude-code"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    config = json.loads(generated.stdout)
    entries = config["mcpServers"]
    assert set(entries) == {f"pai-{name}" for name in SERVERS}
    for (name, transport), running in servers.items():
        entries[f"pai-{name}-{transport}"] = {"type": transport, "url": running.url}
    (tmp_path / ".mcp.json").write_text(json.dumps(config, indent=2))

    out = subprocess.run(
        [
            str(node_client("claude")),
            "--settings",
            '{"enableAllProjectMcpServers": true}',
            "mcp",
            "list",
        ],
        env=env,  # stdio servers inherit it: their PAI_HOME and config are the test's
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
    )
    status = {}
    for line in out.stdout.splitlines():
        entry, sep, rest = line.partition(": ")
        if sep and entry in entries:
            status[entry] = rest
    not_connected = {e: status.get(e, "(not listed)") for e in entries}
    not_connected = {e: s for e, s in not_connected.items() if "✔ Connected" not in s}
    assert not not_connected, out.stdout + out.stderr
