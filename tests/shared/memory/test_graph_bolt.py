"""The Bolt graph store beyond the shared contract: hostile names on every backend, queries that
are parameterised constants only, clear errors, concurrent writers, and no driver at cold start."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from pai_core.errors import BackendUnavailable, Conflict
from pai_core.memory.graph.model import Entity, Fact, PredicateDef
from pai_core.memory.graph.service import GraphService
from pai_core.memory.graph.store import GraphStore
from pai_core.settings import MemorySettings
from tests.conftest import free_port
from tests.shared.memory.boltservers import BoltServer
from tests.shared.memory.conftest import bolt_store
from tests.shared.memory.facts import fact_in

HOSTILE = [
    'O\'Brien "quoted"',
    "back`tick` name",
    "x}) DETACH DELETE n //",
    "MATCH (n) RETURN n",
    "$param {key: 1}",
    "\\u0027; DROP",
    "ünïcödé ✓",
]


def test_hostile_names_round_trip_through_the_store(store: GraphStore) -> None:
    with store.write() as tx:
        for i, name in enumerate(HOSTILE):
            tx.insert_entity(Entity(f"e{i}", name, name.casefold(), "thing`}", 1.0))
            tx.add_alias(f"alias {name}".casefold(), f"alias {name}", f"e{i}")
        tx.upsert_predicate(PredicateDef("`}) DELETE", "one", None, "'\"", ("RETURN",)))
        for i, name in enumerate(HOSTILE):
            tx.insert_fact(
                Fact(f"f{i}", f"e{i}", "`}) DELETE", None, name, 1.0, None, 2.0 + i, note=name)
            )
    with store.read() as tx:
        for i, name in enumerate(HOSTILE):
            entity = tx.entity_by_key(name.casefold())
            assert entity is not None and (entity.id, entity.name) == (f"e{i}", name)
            assert tx.alias_owner(f"alias {name}".casefold()) == f"e{i}"
            [fact] = tx.facts(subject_id=f"e{i}", predicates=["`}) DELETE"])
            assert (fact.value, fact.note) == (name, name)
            assert [f.id for f in tx.facts(value=name)] == [f"f{i}"]
        assert tx.predicate_for_alias("RETURN") == "`}) DELETE"
        assert tx.count_entities() == len(HOSTILE)
        assert tx.count_facts() == len(HOSTILE)


def test_hostile_names_and_keyword_predicates_through_the_service(graph: GraphService) -> None:
    for name in HOSTILE:
        graph.remember(fact_in({"subject": name, "predicate": "MATCH", "object": f"{name} 2"}))
        graph.remember(fact_in({"subject": name, "predicate": "DELETE", "value": name}))
    for name in HOSTILE:
        view = graph.get_entity(name)
        assert view.name == name
        assert sorted((f.predicate, f.object or f.value) for f in view.outgoing) == [
            ("DELETE", name),
            ("MATCH", f"{name} 2"),
        ]
    assert graph.stats() == {"facts": 2 * len(HOSTILE), "entities": 2 * len(HOSTILE)}


# ------------------------------------------------------------------ parameterised queries only
def _module_tree() -> tuple[ast.Module, str]:
    from pai_core.memory.graph import neo4j_store

    source = inspect.getsource(neo4j_store)
    return ast.parse(source), source


def _query_constants(tree: ast.Module) -> set[str]:
    """Module-level names bound to query text built only from literals and other such names."""
    names: set[str] = set()

    def literal(node: ast.expr) -> bool:
        if isinstance(node, ast.Constant):
            return isinstance(node.value, str)
        if isinstance(node, ast.Name):
            return node.id in names
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            return literal(node.left) and literal(node.right)
        if isinstance(node, ast.Tuple):
            return all(literal(e) for e in node.elts)
        if isinstance(node, ast.Dict):
            return all(literal(v) for v in node.values)
        return False

    for stmt in tree.body:
        target, value = None, None
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            target, value = stmt.targets[0], stmt.value
        elif isinstance(stmt, ast.AnnAssign):
            target, value = stmt.target, stmt.value
        if isinstance(target, ast.Name) and value is not None and literal(value):
            names.add(target.id)
    return names


def test_every_query_the_module_sends_is_a_parameterised_constant() -> None:
    tree, _ = _module_tree()
    constants = _query_constants(tree)
    assert {"SCHEMA", "_WRITER", "_INSERT_FACT", "_FACT_FILTERS", "_TIMELINE"} <= constants
    sends = 0
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr not in {"run", "_run", "_one"} or not node.args:
            continue
        sends += 1
        query = node.args[0]
        leaves = [n for n in ast.walk(query) if isinstance(n, ast.Name)]
        assert not any(isinstance(n, ast.JoinedStr) for n in ast.walk(query)), ast.unparse(node)
        assert all(n.id in constants or n.id == "query" for n in leaves), ast.unparse(node)
    assert sends >= 30
    # the one composed query (facts) joins constant WHERE fragments chosen by name
    facts = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "facts")
    for node in ast.walk(facts):
        if isinstance(node, (ast.Assign, ast.AugAssign)):
            target = node.targets[0] if isinstance(node, ast.Assign) else node.target
            if isinstance(target, ast.Name) and target.id == "query":
                assert not any(isinstance(n, ast.JoinedStr) for n in ast.walk(node.value))
                text = ast.unparse(node.value)
                assert text in {
                    "_FACTS_MATCH",
                    "' WHERE ' + ' AND '.join((_FACT_FILTERS[name] for name in used))",
                }, text


def test_no_value_ever_reaches_query_text(arcadedb_server: BoltServer) -> None:
    arcadedb_server.wipe()
    store = bolt_store(arcadedb_server)
    store.queries_sent = []
    try:
        graph = GraphService(store)
        for name in HOSTILE:
            graph.remember(fact_in({"subject": name, "predicate": "USES", "value": name}))
            graph.get_entity(name)
        batch = graph.remember_many(
            [
                fact_in({"subject": n, "predicate": "RUNS_ON", "object": f"{n} host"})
                for n in HOSTILE
            ]
            + [fact_in({"subject": n, "predicate": "USES", "value": n}) for n in HOSTILE]
        )
        assert (batch.written, batch.unchanged) == (len(HOSTILE), len(HOSTILE))
    finally:
        store.close()
    assert len(store.queries_sent) > 20
    for query in store.queries_sent:
        for name in HOSTILE:
            assert name not in query


# ------------------------------------------------------------------ errors and configuration
def test_unreachable_server_is_one_line_naming_backend_address_and_setting() -> None:
    from pai_core.memory.memory import Memory

    port = free_port()
    settings = MemorySettings(
        graph_backend="neo4j",
        neo4j_uri=f"bolt://127.0.0.1:{port}",
        neo4j_password="s3cret-never-shown",
        neo4j_timeout=2,
    )
    with pytest.raises(BackendUnavailable) as info:
        _ = Memory(settings).graph
    message = str(info.value)
    assert "\n" not in message and "s3cret" not in message
    assert "neo4j" in message and f"127.0.0.1:{port}" in message
    assert "PAI_MEMORY_NEO4J_URI" in message and "nothing was changed" in message


def test_a_wrong_password_names_the_settings_and_never_the_secret(
    arcadedb_server: BoltServer,
) -> None:
    from pai_core.memory.graph.neo4j_store import Neo4jGraphStore

    with pytest.raises(BackendUnavailable) as info:
        Neo4jGraphStore(
            arcadedb_server.uri,
            user=arcadedb_server.user,
            password="wrong-s3cret",
            database=arcadedb_server.database,
        )
    message = str(info.value) + str(info.value.hint)
    assert "wrong-s3cret" not in message and arcadedb_server.password not in message
    assert "PAI_MEMORY_NEO4J_PASSWORD" in message


def test_credentials_in_the_uri_are_never_shown() -> None:
    from pai_core.memory.graph.neo4j_store import redact_uri

    assert redact_uri("neo4j+s://bob:pw@db.example:7687/x?y=1") == "neo4j+s://db.example:7687/x"


def test_concurrent_writers_never_interleave(arcadedb_server: BoltServer) -> None:
    """Two writers at once: each commits whole or fails whole, with an explicit error."""
    arcadedb_server.wipe()
    store = bolt_store(arcadedb_server)
    inside = threading.Event()
    outcome: list[str] = []

    def second() -> None:
        inside.wait(10)
        try:
            with store.write() as tx:
                tx.insert_entity(Entity("b", "B", "b", "t", 1.0))
                tx.insert_entity(Entity("b2", "B2", "b2", "t", 1.0))
            outcome.append("second committed")
        except Conflict:
            outcome.append("second refused")

    thread = threading.Thread(target=second)
    thread.start()
    try:
        with store.write() as tx:
            tx.insert_entity(Entity("a", "A", "a", "t", 1.0))
            inside.set()
            thread.join(5)  # Neo4j: blocked on the writer lock; ArcadeDB: commits first
            tx.insert_entity(Entity("a2", "A2", "a2", "t", 1.0))
        outcome.append("first committed")
    except Conflict as exc:
        assert "nothing was changed" in str(exc)
        outcome.append("first refused")
    thread.join(20)
    with store.read() as tx:
        names = sorted(n for _, n in tx.entity_names())
    store.close()
    committed = {o.split()[0] for o in outcome if o.endswith("committed")}
    expected = sorted(
        [
            *(["A", "A2"] if "first" in committed else []),
            *(["B", "B2"] if "second" in committed else []),
        ]
    )
    assert names == expected and committed  # whole transactions only, and at least one


def test_describe_names_the_backend_without_secrets(arcadedb_server: BoltServer) -> None:
    arcadedb_server.wipe()
    store = bolt_store(arcadedb_server)
    try:
        text = store.describe()
    finally:
        store.close()
    assert text.startswith("neo4j:bolt://127.0.0.1:") and arcadedb_server.password not in text


def test_the_driver_is_not_imported_unless_chosen(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from pai_core.memory.memory import Memory\n"
        "from pai_core.settings import MemorySettings\n"
        f"m = Memory(MemorySettings(db_path={str(tmp_path / 'm.db')!r}))\n"
        "m.graph.stats()\n"
        "assert 'neo4j' not in sys.modules, 'neo4j imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_a_server_that_drops_mid_run_fails_calls_explicitly_then_recovers(
    arcadedb_server: BoltServer,
) -> None:
    """The server is stopped by its PID: writes and reads fail with one line naming the backend
    (nothing half-written, no other store used); once it is back the same store works again."""
    if arcadedb_server.proc is None:
        pytest.skip("only a server started here can be stopped")
    arcadedb_server.wipe()
    store = bolt_store(arcadedb_server)
    store.retry_s = 0.5  # transient errors are retried this long before the call fails
    graph = GraphService(store)
    try:
        graph.remember(fact_in({"subject": "MemBrane", "predicate": "RUNS_ON", "object": "inf01"}))
        arcadedb_server.kill()
        for call in (
            lambda: graph.remember(fact_in({"subject": "PAI", "predicate": "USES", "object": "x"})),
            lambda: graph.get_entity("MemBrane"),
        ):
            with pytest.raises(BackendUnavailable) as info:
                call()
            message = str(info.value)
            assert "graph backend neo4j at bolt://127.0.0.1:" in message, message
            assert "nothing was changed" in message and "\n" not in message
        arcadedb_server.revive()
        assert graph.get_entity("MemBrane").outgoing[0].object == "inf01"
        graph.remember(fact_in({"subject": "PAI", "predicate": "USES", "object": "x"}))
        with store.read() as tx:
            assert tx.count_facts() == 2  # the failed write left nothing behind
    finally:
        store.close()


def test_every_session_reads_the_writes_committed_before_it(arcadedb_server: BoltServer) -> None:
    """Sessions share one bookmark manager: a read begins after the store's last commit (the
    migration's verifying read once missed the last fact it had just copied)."""
    arcadedb_server.wipe()
    store = bolt_store(arcadedb_server)
    try:
        graph = GraphService(store)
        graph.remember(fact_in({"subject": "a", "predicate": "USES", "object": "b"}))
        after_first = store.bookmarks.get_bookmarks()
        assert after_first
        graph.remember(fact_in({"subject": "a", "predicate": "USES", "object": "c"}))
        assert store.bookmarks.get_bookmarks() != after_first
        with store.read() as tx:
            assert tx.count_facts() == 2
    finally:
        store.close()
