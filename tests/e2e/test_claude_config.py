"""The shipped client configs name exactly the installed servers and their console scripts."""

from __future__ import annotations

import json
import shutil

from tests.conftest import ROOT, SERVERS, VENV_BIN

CONFIG = ROOT / "claude_config"


def test_stdio_configs_point_at_real_console_scripts() -> None:
    for name in ("mcp.stdio.json", "claude_desktop_config.json"):
        servers = json.loads((CONFIG / name).read_text())["mcpServers"]
        assert set(servers) == {f"pai-{s}" for s in SERVERS}, name
        for entry in servers.values():
            assert (VENV_BIN / entry["command"]).exists() or shutil.which(entry["command"])


def test_http_config_matches_pai_up_port_order() -> None:
    servers = json.loads((CONFIG / "mcp.http.json").read_text())["mcpServers"]
    expected = {
        f"pai-{s}": f"http://127.0.0.1:{8765 + i}/mcp" for i, s in enumerate(sorted(SERVERS))
    }
    assert {k: v["url"] for k, v in servers.items()} == expected
