"""The stdio front answers the handshake from its record exactly as the SDK does, and hands the
session to the SDK without the client noticing (pai_core.fastfront)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from pai_core.fastfront import FRONT_FILE, key_state, source_key
from tests.conftest import script, stop_process

SERVER = "dns"  # the lightest server: the front is the same for all of them
VERSIONS = ["2024-11-05", "2025-11-25", "1999-01-01"]  # oldest, newest, unsupported
DEADLINE_S = 60


def _init(request_id: Any, version: str = "2025-06-18") -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "initialize",
        "params": {
            "protocolVersion": version,
            "capabilities": {"roots": {"listChanged": True}},
            "clientInfo": {"name": "front-test", "version": "1"},
        },
    }


INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}
LIST = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}


class Session:
    """A spawned server and a reader of its stdout (lines as they come, by id)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [script(SERVER)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.replies: list[dict[str, Any]] = []
        self._changed = threading.Condition()
        self._done = False
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self.replies.append(json.loads(line))  # every stdout line is JSON-RPC
                self._changed.notify_all()
        with self._changed:
            self._done = True
            self._changed.notify_all()

    def send(self, *messages: dict[str, Any] | str) -> None:
        assert self.proc.stdin is not None
        for m in messages:
            self.proc.stdin.write(((m if isinstance(m, str) else json.dumps(m)) + "\n").encode())
        self.proc.stdin.flush()

    def reply(self, request_id: Any) -> dict[str, Any]:
        with self._changed:
            found = self._changed.wait_for(
                lambda: self._done or any(r.get("id") == request_id for r in self.replies),
                DEADLINE_S,
            )
            assert found, f"no answer to {request_id!r} within {DEADLINE_S}s"
            return next(r for r in self.replies if r.get("id") == request_id)

    def close(self) -> tuple[int, list[dict[str, Any]]]:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(DEADLINE_S)
        finally:
            stop_process(self.proc)
        with self._changed:
            self._changed.wait_for(lambda: self._done, DEADLINE_S)
        return self.proc.returncode, self.replies


def _handshake(env: dict[str, str], version: str) -> tuple[dict[str, Any], dict[str, Any]]:
    session = Session(env)
    session.send(_init(1, version), INITIALIZED, LIST)
    init, listing = session.reply(1), session.reply(2)
    rc, _ = session.close()
    assert rc == 0
    return init, listing


def _record(env: dict[str, str]) -> Path:
    return Path(env["PAI_HOME"]) / SERVER / "cache" / FRONT_FILE


@pytest.fixture(scope="module")
def warm(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An environment whose server has recorded its handshake (a first, plain start); the
    tests here only read its record (one that changes it works on a copy)."""
    tmp = tmp_path_factory.mktemp("front")
    (tmp / "home").mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PAI_") and k not in ("HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME")
    }
    env.update(HOME=str(tmp / "home"), PAI_HOME=str(tmp / "pai"), PAI_CONFIG=str(tmp / "none"))
    _handshake(env, "2025-06-18")
    assert key_state(json.loads(_record(env).read_text())["key"]) == "fresh"
    return env


def test_front_answers_as_a_plain_sdk_start_does(warm: dict[str, str], tmp_path: Path) -> None:
    plain_env = {**warm, "PAI_HOME": str(tmp_path / "plain")}  # nothing recorded: plain SDK
    plain: dict[str, Any] = {}

    def run_plain(version: str) -> None:
        plain[version] = _handshake(
            plain_env | {"PAI_DNS_DATA_DIR": str(tmp_path / version)}, version
        )

    threads = [threading.Thread(target=run_plain, args=(v,)) for v in VERSIONS]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE_S * 2)
    for version in VERSIONS:
        assert _handshake(warm, version) == plain[version], version
    assert plain["1999-01-01"][0]["result"]["protocolVersion"] == "2025-11-25"


def test_session_handed_over_mid_flight(warm: dict[str, str]) -> None:
    session = Session(warm)
    call = {"jsonrpc": "2.0", "method": "tools/call", "params": {"name": "health", "arguments": {}}}
    session.send(
        _init(1),
        INITIALIZED,
        {"jsonrpc": "2.0", "id": 3, "method": "logging/setLevel", "params": {"level": "debug"}},
        {"jsonrpc": "2.0", "id": 4, "method": "ping"},
        "{not json",
        {**call, "id": 5},
        {**call, "id": 6},
        {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 6}},
        LIST,
    )
    assert session.reply(1)["result"]["serverInfo"]["name"] == "pai-dns"
    assert session.reply(4)["result"] == {}
    assert session.reply(2)["result"]["tools"]
    assert session.reply(3)["result"] == {}
    health = session.reply(5)["result"]
    assert json.loads(health["content"][0]["text"])["server"] == "dns"
    assert session.reply(None)["error"]["code"] == -32700  # the malformed line
    session.send({"jsonrpc": "2.0", "id": 7, "method": "ping"})  # now answered by the SDK
    assert session.reply(7)["result"] == {}
    rc, replies = session.close()
    assert rc == 0
    ids = [r.get("id") for r in replies]
    assert 6 not in ids  # cancelled: never answered, as the SDK does
    assert sorted(i for i in ids if i is not None) == [1, 2, 3, 4, 5, 7]  # nothing private


def test_a_first_request_other_than_initialize_is_left_to_the_sdk(warm: dict[str, str]) -> None:
    session = Session(warm)
    session.send(LIST, _init(1), INITIALIZED, {"jsonrpc": "2.0", "id": 3, "method": "tools/list"})
    assert "error" in session.reply(2)  # before initialize: the SDK's own refusal
    assert session.reply(1)["result"]["protocolVersion"] == "2025-06-18"
    assert session.reply(3)["result"]["tools"]
    assert session.close()[0] == 0


def test_changed_code_or_a_broken_record_takes_the_plain_path(
    warm: dict[str, str], tmp_path: Path
) -> None:
    shutil.copytree(Path(warm["PAI_HOME"]), tmp_path / "pai")
    warm = {**warm, "PAI_HOME": str(tmp_path / "pai")}
    record_file = _record(warm)
    reference = _handshake(warm, "2025-06-18")
    record = json.loads(record_file.read_text())
    record["key"]["files"][0][2] += 1  # the file looks changed ...
    record["key"]["digest"] = "0" * 64  # ... and is
    record["results"]["tools/list"]["2025-06-18"] = {"tools": []}  # what it would wrongly say
    record_file.write_text(json.dumps(record))
    assert _handshake(warm, "2025-06-18") == reference
    assert key_state(json.loads(record_file.read_text())["key"]) == "fresh"  # recorded anew
    record_file.write_text('{"format": ')
    assert _handshake(warm, "2025-06-18") == reference
    assert json.loads(record_file.read_text())["server"] == SERVER


def test_sigterm_while_the_server_loads_exits_cleanly(warm: dict[str, str]) -> None:
    session = Session(warm)
    session.send(_init(1), INITIALIZED, {"jsonrpc": "2.0", "id": 2, "method": "tools/call"})
    session.reply(1)
    session.proc.send_signal(signal.SIGTERM)
    assert session.proc.wait(DEADLINE_S) == 0
    session.close()


def test_the_key_follows_content_not_only_stats(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    module = package / "mod.py"
    module.write_text("x = 1\n")
    key = source_key([str(package)])
    assert key_state(key) == "fresh"
    os.utime(module, ns=(1, 1))  # touched: the stats moved, the content did not
    assert key_state(key) == "same"
    module.write_text("x = 2\n")
    assert key_state(key) == "stale"
    module.write_text("x = 1\n")
    (package / "new.py").write_text("")  # a module added
    assert key_state(key) == "stale"
