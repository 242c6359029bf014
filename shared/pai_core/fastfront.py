"""The stdio front: ``initialize``, ``ping`` and ``tools/list`` answered before the SDK loads.

Importing the SDK costs about a second, most of a server's cold start. The front, standard
library only, answers the handshake from a record of the SDK's own answers (``front.json`` in
the server's cache directory, written by an earlier start: see ``pai_core.sdkseam``) while the
SDK and the server load in a background thread, then hands the session over:

- the client's ``initialize`` is replayed to the SDK under a private request id, and only the
  SDK's answer to that id is dropped (``Handoff.private_id``), so the SDK session ends up
  initialized with the client's real parameters;
- every line the front did not answer (``notifications/initialized``, ``tools/call``,
  ``logging/setLevel``, cancellations, malformed lines, ...) is passed on in arrival order
  with its own id, and from then on every line goes straight to the SDK.

The front answers only what it is sure the SDK would answer the same way: an ``initialize``
as the client's first request with well-formed parameters, then ``ping`` and ``tools/list``.
A first request of any other kind (a 2026-07-28 enveloped request, a ``ping`` before the
handshake) puts it in pass-through: it answers nothing and the SDK sees every line verbatim.

The record is keyed by :func:`source_key`: stat signatures of the code it derives from
(checked in well under a millisecond), with a content digest to fall back on when only the
stats moved. A missing, stale or unreadable record means no front: the SDK answers
everything itself (see :func:`open_front`).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "FRONT_FILE",
    "Front",
    "Handoff",
    "cache_dir",
    "key_state",
    "open_front",
    "read_json",
    "source_key",
    "write_json",
]

FRONT_FILE = "front.json"
FORMAT = 1
_INIT_PARAMS = {"protocolVersion", "capabilities", "clientInfo", "_meta"}
_CLIENT_INFO = {"name", "version", "title", "description", "websiteUrl", "icons"}
_CAPABILITIES = {"experimental", "sampling", "elicitation", "roots", "tasks", "extensions"}
_MODERN_META = "io.modelcontextprotocol/"


# ------------------------------------------------------------------ where the record lives


def cache_dir(name: str, config_file: Path | None = None) -> Path:
    """``<data_dir>/cache`` of server ``name``, resolved as its settings resolve ``data_dir``
    (env ``PAI_<NAME>_DATA_DIR``, then the config file's ``[<name>]``/``[pai]`` tables, then
    ``<PAI_HOME>/<name>``) without loading the settings machinery."""
    data_dir = os.environ.get(f"PAI_{name.upper()}_DATA_DIR")
    if not data_dir:
        data_dir = _data_dir_in_config(name, config_file)
    if data_dir:
        return Path(data_dir).expanduser() / "cache"
    if home := os.environ.get("PAI_HOME"):
        return Path(home).expanduser() / name / "cache"
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg).expanduser() / "pai" / name / "cache"


def _data_dir_in_config(name: str, config_file: Path | None) -> str | None:
    if config_file is None:
        if env := os.environ.get("PAI_CONFIG"):
            config_file = Path(env).expanduser()
        else:
            xdg = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
            config_file = Path(xdg).expanduser() / "pai" / "config.toml"
    if not config_file.is_file():
        return None
    import tomllib

    try:
        data = tomllib.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # the settings will say what is wrong with it
    for table in (name, "pai"):
        section = data.get(table)
        if isinstance(section, dict) and isinstance(section.get("data_dir"), str):
            return str(section["data_dir"])
    return None


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None if it is missing or unreadable."""
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_json(path: Path, payload: dict[str, Any]) -> bool:
    """Write ``payload`` to ``path`` atomically (readers see the old file or the new)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(payload, separators=(",", ":")), encoding="utf-8")
        os.replace(tmp, path)
        return True
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        return False


# ------------------------------------------------------------------ the key


def _walk(roots: Iterable[str]) -> tuple[list[str], list[str]]:
    """The ``.py`` files and the directories under ``roots`` (a root may be one file)."""
    files: list[str] = []
    dirs: list[str] = []
    for root in roots:
        if os.path.isfile(root):
            files.append(root)
            continue
        for here, subdirs, names in os.walk(root):
            subdirs[:] = sorted(d for d in subdirs if d != "__pycache__" and not d.startswith("."))
            dirs.append(here)
            files.extend(os.path.join(here, n) for n in sorted(names) if n.endswith(".py"))
    return files, dirs


def _digest(paths: Iterable[str]) -> str:
    import hashlib

    digest = hashlib.sha256(sys.version.encode() + b"\0")
    for path in paths:
        digest.update(path.encode() + b"\0")
        with open(path, "rb") as fh:
            digest.update(fh.read() + b"\0")
    return digest.hexdigest()


def source_key(roots: Iterable[str], extra_files: Iterable[str] = ()) -> dict[str, Any]:
    """What a cached record derives from: the ``.py`` files under ``roots`` (package
    directories) and ``extra_files`` (the installed SDK's and pydantic's metadata), each with
    its size and mtime, the directories' mtimes (a file added or removed), and a digest of
    every file's content."""
    root_list = sorted(set(roots))
    files, dirs = _walk(root_list)
    extras = sorted(set(extra_files))
    stats = []
    for path in [*files, *extras]:
        st = os.stat(path)
        stats.append([path, st.st_size, st.st_mtime_ns])
    return {
        "python": sys.version,
        "roots": root_list,
        "extra": extras,
        "files": stats,
        "dirs": [[d, os.stat(d).st_mtime_ns] for d in dirs],
        "digest": _digest([*files, *extras]),
    }


def key_state(key: Any) -> str:
    """``fresh`` (every stat matches), ``same`` (stats moved, content did not), or ``stale``."""
    try:
        if key["python"] != sys.version:
            return "stale"
        for path, size, mtime in key["files"]:
            st = os.stat(path)
            if st.st_size != size or st.st_mtime_ns != mtime:
                return _by_content(key)
        for path, mtime in key["dirs"]:
            if os.stat(path).st_mtime_ns != mtime:
                return _by_content(key)
        return "fresh"
    except (OSError, KeyError, TypeError, ValueError):
        return "stale"


def _by_content(key: dict[str, Any]) -> str:
    files, _ = _walk(key["roots"])
    paths = [*files, *key["extra"]]
    if paths != [entry[0] for entry in key["files"]]:
        return "stale"
    return "same" if _digest(paths) == key["digest"] else "stale"


# ------------------------------------------------------------------ the front


@dataclass
class Handoff:
    """What the SDK takes over: lines to replay first, then the live stdin lines."""

    replay: list[str]
    next_line: Callable[[], str]
    """The next line of stdin (blocking); ``""`` at its end."""
    private_id: str | None
    """The id under which the client's ``initialize`` was replayed: drop the answer to it."""


@dataclass
class _State:
    version: str | None = None  # negotiated once the front has answered initialize
    through: bool = False
    private_id: str | None = None
    pending: list[str] = field(default_factory=list)


def open_front(name: str, config_file: Path | None = None) -> Front | None:
    """A front for server ``name`` if its record is there and still matches the code."""
    path = cache_dir(name, config_file) / FRONT_FILE
    record = read_json(path)
    if record is None or record.get("format") != FORMAT or record.get("server") != name:
        return None
    state = key_state(record.get("key"))
    if state == "stale":
        return None
    if state == "same":  # touched, not changed: refresh the stats for the next start
        record["key"] = source_key(record["key"]["roots"], record["key"]["extra"])
        write_json(path, record)
    try:
        return Front(record)
    except (KeyError, TypeError):
        return None


class Front:
    """Answers from ``record`` on stdin/stdout until :meth:`run`'s loader has finished."""

    def __init__(self, record: dict[str, Any]) -> None:
        self._versions: list[str] = list(record["versions"])
        self._latest: str = record["latest"]
        self._results: dict[str, dict[str, Any]] = record["results"]
        for method in ("initialize", "ping", "tools/list"):
            if set(self._results[method]) != set(self._versions):
                raise KeyError(method)
        self._events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._eof = False
        self._out = 1

    def run(self, loader: Callable[[], Any]) -> tuple[Any, Handoff] | None:
        """Answer stdin while ``loader()`` runs in a thread; return its result and the
        hand-off, or None when the client left with nothing left to answer. An exception of
        the loader is raised here."""
        previous = {sig: signal.signal(sig, _exit_now) for sig in (signal.SIGTERM, signal.SIGINT)}
        self._divert_stdout()
        threading.Thread(target=self._read_stdin, name="pai-front-stdin", daemon=True).start()
        threading.Thread(
            target=self._load, args=(loader,), name="pai-front-load", daemon=True
        ).start()
        state = _State()
        loaded: Any = None
        try:
            while True:
                kind, value = self._events.get()
                if kind == "loaded":
                    loaded = value
                    break
                if kind == "failed":
                    raise value
                if kind == "eof":
                    self._eof = True
                    if not state.pending:
                        return None
                    continue  # the SDK answers what is pending, then sees the end
                self._handle(value, state)
        finally:
            self._restore_stdout()
            if loaded is None:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
        return loaded, Handoff(state.pending, self._next_line, state.private_id)

    # -- threads

    def _read_stdin(self) -> None:
        stdin = sys.stdin.buffer
        while True:
            line = stdin.readline()
            if not line:
                self._events.put(("eof", None))
                return
            self._events.put(("line", line.decode("utf-8", errors="replace")))

    def _load(self, loader: Callable[[], Any]) -> None:
        try:
            self._events.put(("loaded", loader()))
        except BaseException as exc:  # handed to the main thread, which raises it
            self._events.put(("failed", exc))

    def _next_line(self) -> str:
        while not self._eof:
            kind, value = self._events.get()
            if kind == "line":
                return str(value)
            if kind == "eof":
                self._eof = True
        return ""

    # -- stdout: the front's answers go to the wire; anything else printed while the
    # server loads goes to stderr, as it does once the SDK holds stdout

    def _divert_stdout(self) -> None:
        try:
            sys.stdout.flush()
            self._out = os.dup(1)
            os.dup2(2, 1)
        except (OSError, ValueError, AttributeError):
            self._out = 1

    def _restore_stdout(self) -> None:
        if self._out == 1:
            return
        with contextlib.suppress(OSError, ValueError, AttributeError):
            sys.stdout.flush()
        os.dup2(self._out, 1)
        os.close(self._out)
        self._out = 1

    def _answer(self, request_id: Any, result: Any) -> None:
        data = json.dumps(
            {"jsonrpc": "2.0", "id": request_id, "result": result},
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode()
        view = memoryview(data + b"\n")
        while view:
            view = view[os.write(self._out, view) :]

    # -- the protocol

    def _handle(self, line: str, state: _State) -> None:
        if not line.strip():
            return  # as the SDK's reader does
        message = _parse(line)
        if state.through or message is None:
            state.pending.append(line)
            return
        method, request_id = message.get("method"), message.get("id")
        is_request = "id" in message and isinstance(method, str)
        if state.version is None:
            if is_request and method == "initialize" and _answerable(message):
                params = message["params"]
                if _initialize_params_ok(params):
                    asked = params["protocolVersion"]
                    state.version = asked if asked in self._versions else self._latest
                    self._answer(request_id, self._results["initialize"][state.version])
                    state.private_id = f"pai-front-{os.getpid()}-{os.urandom(6).hex()}"
                    state.pending.append(json.dumps({**message, "id": state.private_id}))
                    return
            if is_request or "id" in message:
                state.through = True  # the SDK alone decides what this session is
            state.pending.append(line)
            return
        if (
            is_request
            and method in ("ping", "tools/list")
            and _answerable(message)
            and _plain_params_ok(message.get("params"), method)
        ):
            self._answer(request_id, self._results[method][state.version])
            return
        state.pending.append(line)


def _exit_now(signum: int, frame: Any) -> None:
    # Nothing runs yet but the answers from the record: leave at once, cleanly.
    os._exit(0)


def _parse(line: str) -> dict[str, Any] | None:
    try:
        message = json.loads(line)
    except ValueError:
        return None
    return message if isinstance(message, dict) else None


def _answerable(message: dict[str, Any]) -> bool:
    request_id = message.get("id")
    return (
        message.get("jsonrpc") == "2.0"
        and set(message) <= {"jsonrpc", "id", "method", "params"}
        and isinstance(request_id, str | int)
        and not isinstance(request_id, bool)
    )


def _meta_ok(params: dict[str, Any]) -> bool:
    meta = params.get("_meta", {})
    return isinstance(meta, dict) and not any(str(k).startswith(_MODERN_META) for k in meta)


def _initialize_params_ok(params: Any) -> bool:
    if not isinstance(params, dict) or not set(params) <= _INIT_PARAMS or not _meta_ok(params):
        return False
    info, capabilities = params.get("clientInfo"), params.get("capabilities")
    if not isinstance(params.get("protocolVersion"), str):
        return False
    if not isinstance(info, dict) or not set(info) <= _CLIENT_INFO:
        return False
    if not all(isinstance(info.get(k), str) for k in ("name", "version")):
        return False
    if any(k in info and not isinstance(info[k], str) for k in ("title", "description")):
        return False
    if "websiteUrl" in info or "icons" in info:
        return False  # URL and icon validation are the SDK's
    if not isinstance(capabilities, dict) or not set(capabilities) <= _CAPABILITIES:
        return False
    return all(isinstance(v, dict) for v in capabilities.values())


def _plain_params_ok(params: Any, method: str) -> bool:
    if params is None:
        return True
    if not isinstance(params, dict) or not _meta_ok(params):
        return False
    allowed = {"_meta", "cursor"} if method == "tools/list" else {"_meta"}
    if not set(params) <= allowed:
        return False
    return "cursor" not in params or isinstance(params["cursor"], str)
