"""Network namespaces for the firewall tests: the host's ruleset is never touched.

``netns`` is a fresh namespace with only ``lo``; ``veth`` is two namespaces joined by a veth
pair (198.51.100.1 on the firewalled side, 198.51.100.2 on the client side) with a TCP listener
on the firewalled side, so a test can prove a rule really drops and really allows a connection.
Every namespace is deleted at teardown, after the rollback guards the test started have exited.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pai_core.settings import load_settings
from pai_firewall.deadman import guard_alive, read_pending
from pai_firewall.server import build_service
from pai_firewall.service import FirewallService
from pai_firewall.settings import FirewallSettings
from tests.conftest import require_binary, stop_process

SERVER_ADDR, CLIENT_ADDR = "198.51.100.1", "198.51.100.2"

NO_POSTGRES = """
  - name: no-postgres
    must_not_accept: {chain: input, protocol: tcp, dport: 5432}
"""
CONSTITUTION = """
invariants:
  - name: ssh-from-management
    must_accept: {chain: input, protocol: tcp, dport: 22, saddr: 10.0.0.0/8}
  - name: rule-budget
    max_rules: 1200
  - name: annotated
    require: [comment, owner]
  - name: model-rules-expire
    max_lifetime_days: 30
    owners: [model]
"""

LISTENER = """
import socket, sys
socks = []
for port in map(int, sys.argv[1:]):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(64); s.setblocking(False); socks.append(s)
print("ready", flush=True)
import selectors
sel = selectors.DefaultSelector()
for s in socks: sel.register(s, selectors.EVENT_READ)
while True:
    for key, _ in sel.select():
        conn, _ = key.fileobj.accept(); conn.close()
"""


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


def _netns_usable() -> str | None:
    if os.geteuid() != 0:
        return "firewall tests need root (network namespaces and nftables)"
    if shutil.which("ip") is None:
        return "firewall tests need `ip netns` (apt-get install iproute2)"
    probe = f"pai-fw-probe-{secrets.token_hex(3)}"
    try:
        _ip("netns", "add", probe)
    except (subprocess.CalledProcessError, OSError) as exc:
        return f"`ip netns add` does not work here ({exc}): firewall tests need network namespaces"
    _ip("netns", "del", probe)
    return None


@pytest.fixture(scope="session")
def netns_ok() -> None:
    reason = _netns_usable()
    if reason:
        pytest.skip(reason)
    require_binary("nft", package="nftables")


def finish_guards(data_dir: Path, timeout: float = 15) -> None:
    """Let the guard a test left behind finish (its deadline is seconds away), else stop it."""
    deadline = time.monotonic() + timeout
    pid = None
    while time.monotonic() < deadline:
        pending = read_pending(data_dir) if data_dir.exists() else None
        pid = pending.get("guard_pid") if pending else None
        if not guard_alive(pid):
            return
        time.sleep(0.05)
    if pid and guard_alive(pid):
        os.kill(pid, signal.SIGTERM)


@pytest.fixture
def make_netns(netns_ok: None) -> Iterator[object]:
    names: list[str] = []

    def make() -> str:
        name = f"pai-fw-{secrets.token_hex(4)}"
        _ip("netns", "add", name)
        names.append(name)
        _ip("-n", name, "link", "set", "lo", "up")
        return name

    yield make
    for name in names:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)


@pytest.fixture
def netns(make_netns: object) -> str:
    return make_netns()  # type: ignore[operator,no-any-return]


def nft(ns: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", ns, "nft", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.fixture
def constitution_file(tmp_path: Path) -> Path:
    path = tmp_path / "constitution.yaml"
    path.write_text(CONSTITUTION)
    return path


def settings_for(
    ns: str, tmp: Path, constitution: Path | None, **extra: object
) -> FirewallSettings:
    return load_settings(
        FirewallSettings,
        tmp / "no-config.toml",
        netns=ns,
        constitution=constitution,
        data_dir=tmp / "fw-data",
        audit_log=tmp / "audit.jsonl",
        **extra,
    )


@pytest.fixture
def service(netns: str, tmp_path: Path, constitution_file: Path) -> Iterator[FirewallService]:
    svc = build_service(settings_for(netns, tmp_path, constitution_file))
    yield svc
    finish_guards(svc.data_dir)


def wait_until(predicate: object, timeout: float = 15, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} did not happen within {timeout}s")


@dataclass
class Veth:
    server_ns: str
    client_ns: str
    listener: subprocess.Popen[str]

    def connects(self, port: int, timeout: float = 0.5) -> bool:
        """Whether a TCP connection from the client side to the server side succeeds."""
        code = (
            "import socket,sys\n"
            f"s=socket.socket(); s.settimeout({timeout})\n"
            f"sys.exit(s.connect_ex(('{SERVER_ADDR}', {port})))\n"
        )
        proc = subprocess.run(
            ["ip", "netns", "exec", self.client_ns, sys.executable, "-c", code],
            capture_output=True,
            timeout=30,
        )
        return proc.returncode == 0

    def probe_command(self, port: int) -> list[str]:
        return [
            "ip",
            "netns",
            "exec",
            self.client_ns,
            sys.executable,
            "-c",
            "import socket,sys; s=socket.socket(); s.settimeout(1); "
            f"sys.exit(s.connect_ex(('{SERVER_ADDR}', {port})))",
        ]


@pytest.fixture
def veth(make_netns: object) -> Iterator[Veth]:
    server_ns, client_ns = make_netns(), make_netns()  # type: ignore[operator]
    _ip("-n", server_ns, "link", "add", "fw0", "type", "veth", "peer", "name", "fw1", "netns",
        client_ns)  # fmt: skip
    for ns, dev, addr in ((server_ns, "fw0", SERVER_ADDR), (client_ns, "fw1", CLIENT_ADDR)):
        _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
        _ip("-n", ns, "link", "set", dev, "up")
    listener = subprocess.Popen(
        ["ip", "netns", "exec", server_ns, sys.executable, "-c", LISTENER, "8080", "2222"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert listener.stdout is not None and listener.stdout.readline().strip() == "ready"
    pair = Veth(server_ns, client_ns, listener)
    wait_until(lambda: pair.connects(8080), what="a connection over the fresh veth pair")
    yield pair
    stop_process(listener)  # type: ignore[arg-type]
