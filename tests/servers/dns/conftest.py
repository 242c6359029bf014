"""Real authoritative DNS servers for the tests: Knot (primary and secondary) and BIND.

Each fixture writes its config into its own temp dir, starts the daemon on a free loopback
port (UDP and TCP), waits until it answers, and stops it by PID at the end.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from tests.conftest import free_port, require_binary, stop_process

ZONE = "example.test."
KEY_NAME = "pai-key."

ZONE_TEXT = """$ORIGIN example.test.
$TTL 300
@       SOA  ns1.example.test. hostmaster.example.test. 1 3600 600 86400 300
@       NS   ns1.example.test.
ns1     A    127.0.0.1
www     A    192.0.2.1
mail    A    192.0.2.25
@       MX   10 mail.example.test.
@       TXT  "v=spf1 -all"
old     A    192.0.2.99
"""


def make_secret() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


@dataclass
class DnsServer:
    kind: str
    port: int
    proc: subprocess.Popen[bytes]
    directory: Path
    secret: str
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        stop_process(self.proc)

    def serial(self) -> int | None:
        try:
            reply = dns.query.udp(
                dns.message.make_query(ZONE, "SOA"), "127.0.0.1", port=self.port, timeout=1
            )
        except Exception:
            return None
        for rrset in reply.answer:
            for rdata in rrset:
                return int(rdata.serial)
        return None


def _wait_answering(server: DnsServer, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            log = (server.directory / "server.log").read_text(errors="replace")
            raise RuntimeError(
                f"{server.kind} exited with {server.proc.returncode}:\n{log[-3000:]}"
            )
        if server.serial() is not None:
            return
        time.sleep(0.05)
    raise TimeoutError(f"{server.kind} did not answer for {ZONE} on port {server.port}")


def _start(kind: str, cmd: list[str], directory: Path, port: int, secret: str) -> DnsServer:
    log_file = (directory / "server.log").open("wb")
    proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, cwd=directory)
    log_file.close()
    server = DnsServer(kind, port, proc, directory, secret)
    try:
        _wait_answering(server)
    except Exception:
        stop_process(proc)
        raise
    return server


def start_knot(
    directory: Path,
    secret: str,
    *,
    secondary_of: int | None = None,
    notify_port: int | None = None,
    port: int | None = None,
    allow_transfer: bool = True,
    zone_text: str = ZONE_TEXT,
) -> DnsServer:
    knotd = require_binary("knotd", package="knot")
    actions = "[update, transfer]" if allow_transfer else "[update]"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "db").mkdir(exist_ok=True)
    port = port or free_port()
    remotes, zone_extra, acls = [], [], ["pai-acl"]
    if secondary_of is not None:
        remotes.append(f"  - id: primary\n    address: 127.0.0.1@{secondary_of}\n    key: pai-key")
        zone_extra.append("    master: primary")
        acls.append("notify-acl")
    else:
        (directory / "example.test.zone").write_text(zone_text)
    if notify_port is not None:
        remotes.append(f"  - id: secondary\n    address: 127.0.0.1@{notify_port}\n    key: pai-key")
        zone_extra.append("    notify: secondary")
    config = f"""server:
  rundir: "{directory}"
  listen: 127.0.0.1@{port}
database:
  storage: "{directory}/db"
control:
  listen: "{directory}/knot.sock"
log:
  - target: stderr
    any: info
key:
  - id: pai-key
    algorithm: hmac-sha256
    secret: {secret}
{"remote:" + chr(10) + chr(10).join(remotes) if remotes else ""}
acl:
  - id: pai-acl
    key: pai-key
    action: {actions}
  - id: notify-acl
    key: pai-key
    action: notify
template:
  - id: default
    storage: "{directory}"
    file: "%s.zone"
zone:
  - domain: example.test
    acl: [{", ".join(acls)}]
{chr(10).join(zone_extra)}
"""
    (directory / "knot.conf").write_text(config)
    # A secondary answers only once it has transferred the zone: _start waits for that.
    return _start("knot", [knotd, "-c", str(directory / "knot.conf")], directory, port, secret)


def start_bind(directory: Path, secret: str, *, zone_text: str = ZONE_TEXT) -> DnsServer:
    named = require_binary("named", package="bind9")
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o755)
    port = free_port()
    (directory / "example.test.zone").write_text(zone_text)
    config = f"""options {{
  directory "{directory}";
  pid-file "{directory}/named.pid";
  session-keyfile "{directory}/session.key";
  managed-keys-directory "{directory}";
  listen-on port {port} {{ 127.0.0.1; }};
  listen-on-v6 {{ none; }};
  recursion no;
  notify no;
  allow-transfer {{ key pai-key; }};
}};
controls {{ }};
key "pai-key" {{ algorithm hmac-sha256; secret "{secret}"; }};
zone "example.test" {{
  type primary;
  file "{directory}/example.test.zone";
  allow-update {{ key pai-key; }};
}};
"""
    (directory / "named.conf").write_text(config)
    return _start(
        "bind",
        [named, "-g", "-n", "1", "-c", str(directory / "named.conf")],
        directory,
        port,
        secret,
    )


@pytest.fixture
def dns_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="pai-dns-test-"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(params=["knot", "bind"])
def primary(request: pytest.FixtureRequest, dns_dir: Path) -> Iterator[DnsServer]:
    secret = make_secret()
    server = (start_knot if request.param == "knot" else start_bind)(dns_dir / "primary", secret)
    yield server
    server.stop()


@pytest.fixture(params=["knot", "bind"])
def primary_ttl_3600(request: pytest.FixtureRequest, dns_dir: Path) -> Iterator[DnsServer]:
    """A primary whose zone has TTL 3600 everywhere (not the 300 a default would give)."""
    text = ZONE_TEXT.replace("$TTL 300", "$TTL 3600")
    start = start_knot if request.param == "knot" else start_bind
    server = start(dns_dir / "primary", make_secret(), zone_text=text)
    yield server
    server.stop()


@pytest.fixture
def knot(dns_dir: Path) -> Iterator[DnsServer]:
    server = start_knot(dns_dir / "knot", make_secret())
    yield server
    server.stop()


@pytest.fixture
def knot_pair(dns_dir: Path) -> Iterator[tuple[DnsServer, DnsServer]]:
    """A Knot primary that NOTIFYs a Knot secondary, which transfers the zone by AXFR."""
    secret = make_secret()
    secondary_port = free_port()
    primary = start_knot(dns_dir / "primary", secret, notify_port=secondary_port)
    secondary = start_knot(
        dns_dir / "secondary", secret, secondary_of=primary.port, port=secondary_port
    )
    yield primary, secondary
    secondary.stop()
    primary.stop()


def send_update(server: DnsServer, name: str, rtype: str, values: list[str], ttl: int = 300) -> int:
    """A concurrent writer: an UPDATE straight to the server (signed with the right key)."""
    import dns.tsigkeyring
    import dns.update

    keyring = dns.tsigkeyring.from_text({KEY_NAME: server.secret})
    upd = dns.update.UpdateMessage(ZONE, keyring=keyring, keyalgorithm="hmac-sha256")
    upd.replace(name, ttl, rtype, *values)
    return dns.query.tcp(upd, "127.0.0.1", port=server.port, timeout=5).rcode()


def query_ttl(server: DnsServer, name: str, rtype: str) -> int | None:
    """The TTL the server answers ``name rtype`` with (None when there is no such RRset)."""
    reply = _ask(server, name, rtype)
    wanted = dns.rdatatype.from_text(rtype)
    return next((rrset.ttl for rrset in reply.answer if rrset.rdtype == wanted), None)


def _ask(server: DnsServer, name: str, rtype: str) -> dns.message.Message:
    reply = dns.query.udp(
        dns.message.make_query(name, rtype), "127.0.0.1", port=server.port, timeout=2
    )
    assert reply.rcode() in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN)
    return reply


def query(server: DnsServer, name: str, rtype: str) -> list[str]:
    reply = _ask(server, name, rtype)
    return sorted(
        r.to_text()
        for rrset in reply.answer
        if rrset.rdtype == dns.rdatatype.from_text(rtype)
        for r in rrset
    )
