"""Requests an attacker or a broken client sends get an answer, and cannot flood the log.

Malformed JSON-RPC (not JSON, nested ~200 levels, an ``id`` of NaN, ``{}`` or ``1e99999``) is
answered with its JSON-RPC error on stdio, Streamable HTTP and SSE; a web page hammering
``/sse`` with a foreign Origin gets 403s and the log one line; bearer tokens are honoured by
``pai serve`` and refused when too weak; a server bound to another loopback address answers.
"""

from __future__ import annotations

import json
import select
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import VENV_BIN, free_port, run_server, script, stop_process
from tests.e2e.client_fixtures import INITIALIZE as INIT

HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
DEEP = json.dumps(
    {
        "jsonrpc": "2.0",
        "id": 5,
        "method": "tools/call",
        "params": {"name": "health", "arguments": {"x": json.loads("[" * 200 + "]" * 200)}},
    }
)
# (line sent, id the error must carry, JSON-RPC code)
MALFORMED = [
    ("this is not json", None, -32700),
    (DEEP, 5, -32600),
    ('{"jsonrpc":"2.0","id":NaN,"method":"ping"}', None, -32600),
    ('{"jsonrpc":"2.0","id":{},"method":"ping"}', None, -32600),
    ('{"jsonrpc":"2.0","id":1e99999,"method":"ping"}', None, -32600),
]
TOKEN = "a-long-enough-token-for-the-tests-0123"


def _read_json_line(proc: subprocess.Popen[bytes], deadline: float) -> dict[str, Any]:
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            line = proc.stdout.readline()
            assert line, "the server closed stdout"
            return dict(json.loads(line))
    raise TimeoutError("no reply from the server")


@pytest.fixture
def stdio_dns(pai_env: dict[str, str], tmp_path: Any) -> Iterator[subprocess.Popen[bytes]]:
    log = (tmp_path / "stderr.log").open("wb")
    proc = subprocess.Popen(
        [script("dns")], env=pai_env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log
    )
    log.close()
    yield proc
    stop_process(proc)


def test_malformed_lines_on_stdio_get_their_error_and_the_server_goes_on(
    stdio_dns: subprocess.Popen[bytes], tmp_path: Any
) -> None:
    proc = stdio_dns
    assert proc.stdin is not None
    deadline = time.monotonic() + 60
    proc.stdin.write((json.dumps(INIT) + "\n").encode())
    proc.stdin.flush()
    assert _read_json_line(proc, deadline)["id"] == 1
    for line, want_id, code in MALFORMED:
        proc.stdin.write((line + "\n").encode())
        proc.stdin.flush()
        reply = _read_json_line(proc, deadline)
        assert reply.get("error", {}).get("code") == code, (line[:60], reply)
        assert reply["id"] == want_id, (line[:60], reply)
    proc.stdin.write(b'{"jsonrpc":"2.0","id":9,"method":"ping"}\n')
    proc.stdin.flush()
    assert _read_json_line(proc, deadline) == {"jsonrpc": "2.0", "id": 9, "result": {}}
    log = (tmp_path / "stderr.log").read_text()
    assert log.count("malformed JSON-RPC on stdin") == len(MALFORMED), log


def _sse_session(base: str, client: httpx.Client) -> tuple[str, Any]:
    """Open /sse and return the message endpoint it announces (and the open stream)."""
    stream = client.stream("GET", f"{base}/sse", headers={"Accept": "text/event-stream"})
    response = stream.__enter__()
    for line in response.iter_lines():
        if line.startswith("data:"):
            return base + line.removeprefix("data:").strip(), stream
    raise AssertionError("no endpoint event on /sse")


def _assert_malformed_posts_answered(
    client: httpx.Client, url: str, headers: dict[str, str]
) -> None:
    for body, want_id, code in MALFORMED:
        r = client.post(url, content=body, headers=headers)
        assert r.status_code == 400, (body[:60], r.status_code, r.text)
        assert r.json()["error"]["code"] == code and r.json()["id"] == want_id, r.text


def test_malformed_posts_over_streamable_http_get_their_error(pai_env: dict[str, str]) -> None:
    with run_server("dns", "http", pai_env) as srv, httpx.Client(timeout=10) as client:
        init = client.post(srv.url, json=INIT, headers=HEADERS)
        headers = {**HEADERS, "mcp-session-id": init.headers["mcp-session-id"]}
        _assert_malformed_posts_answered(client, srv.url, headers)
        # Past the SDK's body cap the body goes on to the SDK, streamed or not: 413.
        huge = b'{"jsonrpc":"2.0","id":7,"method":"ping","params":{"x":"' + b"a" * 5_000_000
        assert client.post(srv.url, content=huge, headers=headers).status_code == 413
        parts = iter([huge[:3_000_000], huge[3_000_000:]])
        streamed = client.post(srv.url, content=parts, headers=headers)
        assert streamed.status_code == 413, streamed.text[:200]
        ping = client.post(
            srv.url, json={"jsonrpc": "2.0", "id": 8, "method": "ping"}, headers=headers
        )
        assert ping.status_code == 200 and '"id":8' in ping.text, ping.text
        log = srv.log()
    assert "malformed JSON-RPC over HTTP" in log and "Traceback" not in log, log[-2000:]


def test_sse_answers_malformed_posts_and_a_hammering_page_cannot_flood_the_log(
    pai_env: dict[str, str],
) -> None:
    with run_server("dns", "sse", pai_env) as srv, httpx.Client(timeout=10) as client:
        url, stream = _sse_session(f"http://127.0.0.1:{srv.port}", client)
        try:
            _assert_malformed_posts_answered(client, url, HEADERS)
        finally:
            stream.__exit__(None, None, None)
        before = len(srv.log())
        codes = {
            client.get(srv.url, headers={"Origin": "http://evil.example"}).status_code
            for _ in range(300)
        }
        codes |= {
            client.get(srv.url, headers={"Host": f"evil.example:{srv.port}"}).status_code
            for _ in range(50)
        }
        grown = srv.log()[before:]
    assert codes == {403, 421}
    assert "Traceback" not in grown and "ValueError" not in grown, grown[:3000]
    assert len(grown) < 1000, grown  # one short line per kind, not one per request


def test_another_loopback_address_is_served_and_pai_http_token_guards_it(
    pai_env: dict[str, str],
) -> None:
    """``pai serve`` honours PAI_HTTP_TOKEN (it used to only be read by ``pai up``), and a
    server bound to 127.0.0.2 accepts its own address in Host (it answered 421 to all)."""
    port = free_port()
    cmd = [str(VENV_BIN / "pai"), "serve", "dns", "--transport", "http", "--port", str(port)]
    proc = subprocess.Popen(
        [*cmd, "--host", "127.0.0.2"],
        env={**pai_env, "PAI_HTTP_TOKEN": TOKEN},
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.2:{port}/mcp"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                bare = httpx.post(url, json=INIT, headers=HEADERS, timeout=10)
                break
            except httpx.ConnectError:
                assert proc.poll() is None and time.monotonic() < deadline, "never listened"
                time.sleep(0.05)
        assert bare.status_code == 401
        auth = {**HEADERS, "Authorization": f"Bearer {TOKEN}"}
        ok = httpx.post(url, json=INIT, headers=auth, timeout=10)
        assert ok.status_code == 200 and "pai-dns" in ok.text, ok.text
    finally:
        stop_process(proc)


def test_pai_serve_refuses_a_weak_token_with_the_reason(pai_env: dict[str, str]) -> None:
    port = free_port()
    proc = subprocess.run(
        [str(VENV_BIN / "pai"), "serve", "dns", "--transport", "http", "--port", str(port)],
        env={**pai_env, "PAI_HTTP_TOKEN": "short-token"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert "refusing to start" in proc.stderr and "at least 24" in proc.stderr, proc.stderr
    assert "short-token" not in proc.stderr


def test_pai_up_refuses_a_weak_shared_token(pai_env: dict[str, str], tmp_path: Any) -> None:
    proc = subprocess.run(
        [str(VENV_BIN / "pai"), "up", "--only", "dns", "--check"],
        env={**pai_env, "PAI_HTTP_TOKEN": "abc"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "at least 24" in proc.stderr, proc.stderr
