"""Memory at scale: the same graph tools on the embedded SQLite store and over Bolt, and the
Redis caches (query embeddings, hot search results).

- Graph: load N facts through ``GraphService.remember_many`` (batches of 1000, the path every
  tool takes), then p50/p95 of the read tools (get_entity, query_facts, traverse depth 2,
  timeline of the last week) on random entities, and disk per fact. SQLite at 10k and 100k;
  ArcadeDB over Bolt (the Neo4j store, driver and Cypher; ArcadeDB stands in for Neo4j, which
  cannot be installed here) at 10k.
- Large sizes (SQLite 1M with ``--million``, Bolt 100k with ``--bolt-100k``) would take hours
  fact by fact, so their base is bulk-loaded with the migration loader (the records
  ``remember_many`` would write, a single-valued predicate's older fact closed and superseded
  by the newer), then the write throughput is measured through ``remember_many`` on a sample
  window of facts written on top, and the reads as above. Their rows say "bulk + window".
- Redis: a repeated query's vector from Redis (hit) against embedding it with the model (miss),
  and a repeated search answered from the hot-result cache (hit) against searching (miss:
  every call after a write, which bumps the generation its key holds).

Reads are measured in-process (service → store), not through MCP, to isolate the store.

``--before REV`` measures every graph row a second time, in the same run, with the graph code
(service and stores) as it was at git revision ``REV``: the same workload, old against new.
``--skip sqlite`` / ``--skip redis`` leave those rows out of the run; rows of the committed
results file that a run does not measure (those, or a size not rerun, like SQLite 1M without
``--million``) are kept and named in the summary with the load of the run that measured them.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import stop_process  # noqa: E402
from tests.shared.memory.boltservers import start_arcadedb  # noqa: E402

PREDICATES = ["USES", "DEPENDS_ON", "RUNS_ON", "PART_OF", "RELATES_TO", "OWNED_BY", "HAS_VERSION"]


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return round(values[min(len(values) - 1, int(round(q * (len(values) - 1))))] * 1000, 2)


def hit_and_miss(hit: list[float], miss: list[float]) -> dict[str, Any]:
    """p50/p95 of cache hits and misses, and how much faster a hit is at p50."""
    return {
        "miss_p50_ms": pct(miss, 0.5),
        "miss_p95_ms": pct(miss, 0.95),
        "hit_p50_ms": pct(hit, 0.5),
        "hit_p95_ms": pct(hit, 0.95),
        "speedup_p50": round(pct(miss, 0.5) / max(pct(hit, 0.5), 0.001), 1),
    }


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def load(
    graph: Any,
    n_facts: int,
    clock: dict[str, float],
    seed: int = 7,
    batch_size: int = 1000,
    n_entities: int | None = None,
) -> dict[str, Any]:
    from pai_core.memory.graph.views import FactIn

    rng = random.Random(seed)
    n_entities = n_entities or max(10, n_facts // 5)
    step = 90 * 86400 / n_facts
    started = time.perf_counter()
    for start in range(0, n_facts, batch_size):
        batch = []
        for _ in range(start, min(start + batch_size, n_facts)):
            pred = rng.choice(PREDICATES)
            item: dict[str, Any] = {"subject": f"entity-{rng.randrange(n_entities)}"}
            item["predicate"] = pred
            if pred == "HAS_VERSION":
                item["value"] = f"{rng.randrange(10)}.{rng.randrange(50)}"
            else:
                obj = f"entity-{rng.randrange(n_entities)}"
                item["object"] = obj if obj != item["subject"] else obj + "x"
            batch.append(FactIn.model_validate(item))
        clock["t"] += step * len(batch)
        graph.remember_many(batch)
    elapsed = time.perf_counter() - started
    return {"facts_per_s": round(n_facts / elapsed), "load_s": round(elapsed, 1)}


def reads(graph: Any, n_entities: int, calls: int) -> dict[str, Any]:
    rng = random.Random(3)
    workloads = {
        "get_entity": lambda: graph.get_entity(f"entity-{rng.randrange(n_entities)}"),
        "query_facts": lambda: graph.query(
            subject=f"entity-{rng.randrange(n_entities)}", predicate="USES"
        ),
        "traverse_depth2": lambda: graph.traverse(f"entity-{rng.randrange(n_entities)}", depth=2),
        "timeline_last_week": lambda: graph.timeline(since="last week", limit=200),
    }
    out: dict[str, Any] = {}
    from pai_core.errors import NotFound

    for label, call in workloads.items():
        times = []
        for i in range(calls + 3):
            t = time.perf_counter()
            with contextlib.suppress(NotFound):
                call()
            if i >= 3:  # the first calls warm caches and plans
                times.append(time.perf_counter() - t)
        out[label] = {"p50_ms": pct(times, 0.5), "p95_ms": pct(times, 0.95)}
    return out


def bulk_load(store: Any, n_facts: int, clock: dict[str, float], seed: int = 11) -> float:
    """Write ``n_facts`` consistent records straight through the store (the migration loader's
    path), in chunks; return the seconds it took."""
    from pai_core.memory.graph.migrate import GraphDump
    from pai_core.memory.graph.model import Entity, Fact, entity_key
    from pai_core.memory.graph.predicates import BUILTIN_PREDICATES

    rng = random.Random(seed)
    single = {p.name for p in BUILTIN_PREDICATES if p.cardinality == "one"}
    n_entities = max(10, n_facts // 5)
    step = 90 * 86400 / n_facts
    started = time.perf_counter()
    entities = [
        Entity(f"e-bulk-{i}", f"entity-{i}", entity_key(f"entity-{i}"), "thing", clock["t"])
        for i in range(n_entities)
    ]
    current: dict[tuple[int, str], int] = {}
    facts: list[Fact] = []
    for i in range(n_facts):
        clock["t"] += step
        subject, pred = rng.randrange(n_entities), rng.choice(PREDICATES)
        obj: str | None = None
        value: str | None = None
        if pred == "HAS_VERSION":
            value = f"{rng.randrange(10)}.{rng.randrange(50)}"
        else:
            other = rng.randrange(n_entities)
            obj = entities[other if other != subject else (other + 1) % n_entities].id
        fact = Fact(f"f-bulk-{i}", entities[subject].id, pred, obj, value, clock["t"], None,
                    clock["t"], source="bench")  # fmt: skip
        if pred in single and (old := current.get((subject, pred))) is not None:
            facts[old] = replace(facts[old], valid_to=clock["t"], superseded_by=fact.id)
        current[(subject, pred)] = len(facts)
        facts.append(fact)
    dump = GraphDump(entities=entities, predicates=list(BUILTIN_PREDICATES), facts=facts)
    with store.write() as tx:
        if hasattr(tx, "load"):
            tx.load(dump)
        else:
            for pred_def in dump.predicates:
                tx.upsert_predicate(pred_def)
            for entity in entities:
                tx.insert_entity(entity)
            for fact in facts:
                tx.insert_fact(fact)
    return time.perf_counter() - started


GRAPH_MODULES = ("service", "sqlite_store", "neo4j_store")


def graph_code(rev: str | None, tmp: Path) -> dict[str, Any]:
    """The graph's service and store modules: today's, or as they were at git revision ``rev``
    (loaded under other names beside today's; they import the unchanged model and rules)."""
    if rev is None:
        return {n: importlib.import_module(f"pai_core.memory.graph.{n}") for n in GRAPH_MODULES}
    out: dict[str, Any] = {}
    for name in GRAPH_MODULES:
        source = subprocess.run(
            ["git", "show", f"{rev}:shared/pai_core/memory/graph/{name}.py"],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        path = tmp / f"before_{name}.py"
        path.write_text(source)
        spec = importlib.util.spec_from_file_location(f"before_{name}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        out[name] = module
    return out


def bench_graph(
    backend: str,
    n: int,
    calls: int,
    server: Any,
    tmp: Path,
    *,
    bulk: bool = False,
    code: dict[str, Any],
) -> dict[str, Any]:
    clock = {"t": time.time() - 90 * 86400}
    if backend == "sqlite":
        store: Any = code["sqlite_store"].SqliteGraphStore(tmp / f"graph-{n}.db")
    else:
        server.wipe()
        store = code["neo4j_store"].Neo4jGraphStore(
            server.uri, user=server.user, password=server.password, database=server.database
        )
    graph = code["service"].GraphService(store, clock=lambda: clock["t"])
    if bulk:
        window = 10_000
        seconds = bulk_load(store, n - window, clock)
        row: dict[str, Any] = {"load": load(graph, window, clock, seed=5, n_entities=n // 5)}
        row["load"].update(bulk_s=round(seconds, 1), window=window, bulk=True)
    else:
        row = {"load": load(graph, n, clock)}
    # smaller batches on the same graph: what a tool call writing 100 facts sees
    row["load_batch100"] = load(graph, 2000, clock, seed=9, batch_size=100, n_entities=n // 5)
    stats = graph.stats()
    clock["t"] = time.time()
    row["reads"] = reads(graph, max(10, n // 5), calls)
    store.close()
    if backend == "sqlite":
        disk = sum(p.stat().st_size for p in tmp.glob(f"graph-{n}.db*"))
        for p in tmp.glob(f"graph-{n}.db*"):
            p.unlink()  # the next run of this size (--before) starts from an empty file
    else:
        disk = dir_size(server.root / "databases")
    row.update(stats=stats, disk_bytes_per_fact=round(disk / max(1, stats["facts"]), 1))
    return row


def bench_redis(tmp: Path, repeats: int) -> dict[str, Any] | None:
    if shutil.which("redis-server") is None and not Path("/usr/bin/redis-server").exists():
        return None
    from pai_membrane.search.redis_cache import CachedEmbedder, RedisCache
    from pai_membrane.search.vectors import LocalEmbedder, default_model_path
    from tests.servers.membrane.test_redis_cache import _start

    if default_model_path() is None:
        return None
    proc, url = _start(tmp)
    try:
        model = LocalEmbedder()
        embedder = CachedEmbedder(model, RedisCache(url, prefix="bench:"))
        model.embed(["warm the encoder"])
        miss, hit = [], []
        for i in range(repeats):
            query = f"where does service {i} run and who owns it"
            t = time.perf_counter()
            embedder.embed([query])
            miss.append(time.perf_counter() - t)
            t = time.perf_counter()
            embedder.embed([query])
            hit.append(time.perf_counter() - t)
        return hit_and_miss(hit, miss)
    finally:
        stop_process(proc)


def bench_hot_results(tmp: Path, repeats: int) -> dict[str, Any] | None:
    """Search (full text + graph, 2,000 facts) answered from Redis against searched again."""
    if shutil.which("redis-server") is None and not Path("/usr/bin/redis-server").exists():
        return None
    from pai_core.memory.graph.views import FactIn
    from pai_core.settings import MemorySettings
    from pai_membrane.memory import MembraneMemory
    from pai_membrane.settings import MembraneSettings
    from tests.servers.membrane.test_redis_cache import _start

    proc, url = _start(tmp)
    settings = MemorySettings(db_path=tmp / "hot.db", vault_path=tmp / "hot-vault", redis_url=url)
    memory = MembraneMemory(MembraneSettings(embeddings=False, watch_vault=False, memory=settings))
    try:
        rng = random.Random(2)
        for start in range(0, 2000, 500):
            memory.graph.remember_many(
                [
                    FactIn(
                        subject=f"service-{i}",
                        predicate=rng.choice(PREDICATES[:2]),
                        object=f"host-{rng.randrange(50)}",
                    )  # fmt: skip
                    for i in range(start, start + 500)
                ]
            )
        memory.after_write()
        search = memory.search
        miss, hit = [], []
        for i in range(repeats):
            query = f"service-{i % 200} depends on which host"
            assert memory.generation is not None
            memory.generation.before_commit()  # what any write does: every entry unreachable
            t = time.perf_counter()
            search.search(query)
            miss.append(time.perf_counter() - t)
            t = time.perf_counter()
            search.search(query)
            hit.append(time.perf_counter() - t)
        return hit_and_miss(hit, miss)
    finally:
        memory.stop()
        stop_process(proc)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="1k facts only")
    parser.add_argument("--million", action="store_true", help="SQLite at 1M facts too")
    parser.add_argument("--bolt-100k", action="store_true", help="ArcadeDB at 100k facts too")
    parser.add_argument(
        "--before", metavar="REV", help="also run each graph row with the graph code at git REV"
    )
    parser.add_argument(
        "--skip",
        action="append",
        choices=["sqlite", "redis"],
        default=[],
        help="leave these rows out and keep the committed ones",
    )
    args = parser.parse_args()
    sqlite_sizes = [1000] if args.quick else [10_000, 100_000]
    bolt_sizes = [1000] if args.quick else [10_000]
    big_sqlite = [20_000 if args.quick else 1_000_000] if args.million else []
    big_bolt = [5_000 if args.quick else 100_000] if args.bolt_100k else []
    if "sqlite" in args.skip:
        sqlite_sizes, big_sqlite = [], []
    calls = 30 if args.quick else 200
    out = HERE / ("results/quick" if args.quick else "results")  # never over the record
    results: dict[str, Any] = {"benchmark": "memory_scale", "sqlite": {}, "bolt": {}}
    results["load_average_at_start"] = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="pai-scale-bench-"))
    codes = {"": graph_code(None, tmp)}
    if args.before:
        codes["_before"] = graph_code(args.before, tmp)
        results["before_rev"] = args.before
    server = None
    try:
        for suffix, code in codes.items():
            key = "sqlite" + suffix
            for n in sqlite_sizes:
                row = bench_graph("sqlite", n, calls, None, tmp, code=code)
                results.setdefault(key, {})[str(n)] = row
                print(json.dumps({key: {n: row}}), flush=True)
            for n in big_sqlite:
                row = bench_graph("sqlite", n, calls, None, tmp, bulk=True, code=code)
                results.setdefault(key, {})[str(n)] = row
                print(json.dumps({key: {n: row}}), flush=True)
        try:
            server = start_arcadedb(tmp / "arcadedb")
        except RuntimeError as exc:
            results["bolt_skipped"] = str(exc).splitlines()[0]
        if server is not None:
            # a small load with each code first, so that no row meets the server's cold JIT
            for code in codes.values():
                bench_graph("bolt", 3000, 10, server, tmp, code=code)
            for suffix, code in codes.items():
                key = "bolt" + suffix
                for n in bolt_sizes:
                    # fewer calls: ArcadeDB's Cypher scans for ranges (timeline ~0.5 s a call)
                    row = bench_graph("bolt", n, max(30, calls // 4), server, tmp, code=code)
                    results.setdefault(key, {})[str(n)] = row
                    print(json.dumps({key: {n: row}}), flush=True)
                for n in big_bolt:
                    row = bench_graph("bolt", n, 30, server, tmp, bulk=True, code=code)
                    results.setdefault(key, {})[str(n)] = row
                    print(json.dumps({key: {n: row}}), flush=True)
        if "redis" not in args.skip:
            results["redis_query_cache"] = bench_redis(tmp, 20 if args.quick else 100)
            print(json.dumps({"redis": results["redis_query_cache"]}), flush=True)
            results["redis_hot_results"] = bench_hot_results(tmp, 20 if args.quick else 100)
            print(json.dumps({"redis_hot": results["redis_hot_results"]}), flush=True)
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    results["load_average_at_end"] = os.getloadavg()
    if not args.quick:  # a quick run is a smoke test: its rows are not comparable
        keep(results, out / "memory_scale.json", skip_redis="redis" in args.skip)
    out.mkdir(parents=True, exist_ok=True)
    (out / "memory_scale.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "memory_scale.md").write_text(summary(results))


def keep(results: dict[str, Any], committed_file: Path, *, skip_redis: bool) -> None:
    """Rows of the committed results this run did not measure (a size not rerun, Redis when
    skipped) are kept, and named with the load of the run that measured them."""
    if not committed_file.exists():
        return
    committed = json.loads(committed_file.read_text())
    kept: list[str] = []
    rev = committed.get("before_rev")
    for key, label in (
        ("sqlite", "SQLite"),
        ("bolt", "Bolt"),
        ("sqlite_before", f"SQLite with the code at {rev}"),
        ("bolt_before", f"Bolt with the code at {rev}"),
    ):
        if key.endswith("_before") and rev != results.get("before_rev"):
            continue  # measured against other code than this run's comparison
        for n, row in committed.get(key, {}).items():
            if n not in results.setdefault(key, {}):
                results[key][n] = row
                kept.append(f"{label} {int(n):,}")
    if skip_redis:
        for key in ("redis_query_cache", "redis_hot_results"):
            results[key] = committed.get(key)
        kept.append("Redis")
    earlier = committed.get("kept_from") or []
    earlier = [earlier] if isinstance(earlier, dict) else earlier
    runs = [{**e, "rows": [r for r in e["rows"] if r in kept]} for e in earlier]
    already = {r for e in runs for r in e["rows"]}
    runs.append(
        {
            "rows": [r for r in kept if r not in already],
            "load_average_at_start": committed["load_average_at_start"],
            "load_average_at_end": committed["load_average_at_end"],
        }
    )
    results["kept_from"] = [e for e in runs if e["rows"]]


def summary(results: dict[str, Any]) -> str:
    def cell(reads: dict[str, Any], key: str) -> str:
        return f"{reads[key]['p50_ms']} / {reads[key]['p95_ms']}"

    rev = results.get("before_rev")
    lines = [
        "### Memory at scale (graph tools in-process, p50 / p95 ms)",
        "",
        "| store | facts | load (facts/s) | batches of 100 (facts/s) | get_entity | query_facts "
        "| traverse d=2 | timeline (week) | disk/fact (B) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, key in (
        ("SQLite (embedded)", "sqlite"),
        (f"SQLite (embedded), code at {rev}", "sqlite_before"),
        ("ArcadeDB over Bolt", "bolt"),
        (f"ArcadeDB over Bolt, code at {rev}", "bolt_before"),
    ):
        for n, row in results.get(key, {}).items():
            r = row["reads"]
            bulk = " (bulk + window)" if row["load"].get("bulk") else ""
            small = row.get("load_batch100", {}).get("facts_per_s")
            lines.append(
                f"| {label} | {int(n):,}{bulk} | {row['load']['facts_per_s']:,} | "
                f"{f'{small:,}' if small else '–'} | "
                f"{cell(r, 'get_entity')} | {cell(r, 'query_facts')} | "
                f"{cell(r, 'traverse_depth2')} | {cell(r, 'timeline_last_week')} | "
                f"{row['disk_bytes_per_fact']:,} |"
            )
    for key, label in (("bolt", "Over Bolt"), ("sqlite", "On SQLite")):
        before = results.get(f"{key}_before", {})
        pairs = [(n, results[key][n], before[n]) for n in results[key] if n in before]
        if pairs:
            text = "; ".join(
                f"{int(n):,} facts {now['load']['facts_per_s']:,} against "
                f"{old['load']['facts_per_s']:,} facts/s "
                f"({now['load']['facts_per_s'] / max(1, old['load']['facts_per_s']):.1f}x), "
                f"batches of 100 {now['load_batch100']['facts_per_s']:,} against "
                f"{old['load_batch100']['facts_per_s']:,} "
                f"({now['load_batch100']['facts_per_s'] / max(1, old['load_batch100']['facts_per_s']):.1f}x)"
                for n, now, old in pairs
            )
            lines += [
                "",
                f"{label}, writes through remember_many against the graph code at {rev} in the "
                f"same run: {text}.",
            ]
    redis = results.get("redis_query_cache")
    if redis:
        lines += [
            "",
            f"Redis query-embedding cache: hit {redis['hit_p50_ms']} / {redis['hit_p95_ms']} ms, "
            f"miss (model) {redis['miss_p50_ms']} / {redis['miss_p95_ms']} ms "
            f"({redis['speedup_p50']}x at p50).",
        ]
    hot = results.get("redis_hot_results")
    if hot:
        lines += [
            "",
            f"Redis hot-result cache (a repeated search, 2,000 facts, full text + graph): hit "
            f"{hot['hit_p50_ms']} / {hot['hit_p95_ms']} ms, miss (searched, after a write) "
            f"{hot['miss_p50_ms']} / {hot['miss_p95_ms']} ms ({hot['speedup_p50']}x at p50).",
        ]
    if any(
        row["load"].get("bulk")
        for key in ("sqlite", "bolt")
        for row in results.get(key, {}).values()
    ):
        lines += [
            "",
            "Bulk + window rows: the base was bulk-loaded with the migration loader; load is "
            "remember_many's throughput on the window of facts written on top of it "
            "(10,000 facts, subjects drawn from all the base's entities). Their reads run on a "
            "file written in one pass (compact, in insertion order), which favours them over "
            "rows loaded fact by fact. Batches of 100: 2,000 more facts written in batches of "
            "100 after the load, on the same graph.",
        ]
    lines += ["", advice(results)]
    start, end = results["load_average_at_start"], results["load_average_at_end"]
    lines += ["", f"Load average {start[0]:.1f} at start, {end[0]:.1f} at end (2 shared cores)."]
    for kept in results.get("kept_from", []):
        lines += [
            "",
            f"Not rerun here, kept from an earlier run: {', '.join(kept['rows'])} "
            f"(load average {kept['load_average_at_start'][0]:.1f} at its start, "
            f"{kept['load_average_at_end'][0]:.1f} at its end).",
        ]
    return "\n".join(lines) + "\n"


def advice(results: dict[str, Any]) -> str:
    """When to leave the embedded default, from this run's numbers."""
    sq, bolt = results["sqlite"], results["bolt"]
    if not sq or not bolt:
        return "No Bolt numbers in this run: no advice on moving to Neo4j."
    # The growth claim compares rows loaded the same way (fact by fact); a bulk-loaded row's
    # compact file reads faster, so it is named on its own.
    plain = {k: v for k, v in sq.items() if not v["load"].get("bulk")} or sq
    small, large = plain[min(plain, key=int)], plain[max(plain, key=int)]
    bulk = [(k, v) for k, v in sq.items() if v["load"].get("bulk")]
    also = "".join(
        f"; {int(k):,} facts bulk-loaded (a compact file): {v['reads']['get_entity']['p50_ms']} ms "
        f"at ~{v['disk_bytes_per_fact']:.0f} B a fact"
        for k, v in bulk
    )
    same = next((row for n, row in bolt.items() if n in sq), None)
    if same is None:
        return "No size measured on both stores: no side-by-side advice."
    n = next(n for n in bolt if n in sq)
    ratio = same["reads"]["get_entity"]["p50_ms"] / max(
        sq[n]["reads"]["get_entity"]["p50_ms"], 0.01
    )
    return (
        "When to move: stay on the embedded SQLite store while one machine holds the memory: "
        f"get_entity p50 goes from {small['reads']['get_entity']['p50_ms']} ms to "
        f"{large['reads']['get_entity']['p50_ms']} ms over {int(min(plain, key=int)):,}→"
        f"{int(max(plain, key=int)):,} facts (sub-linear) at ~{large['disk_bytes_per_fact']:.0f} "
        f"B a fact{also}. Move to Neo4j + Qdrant when several machines or people must share one memory "
        "or it outgrows one disk: over Bolt every tool call pays network round trips (here "
        f"get_entity {ratio:.0f}x slower and writes {sq[n]['load']['facts_per_s'] / max(1, same['load']['facts_per_s']):.0f}x "
        "slower at the same size), so the move buys sharing, not speed. The Bolt numbers are "
        "ArcadeDB's (Neo4j cannot be installed here; ArcadeDB's Cypher scans for time ranges)."
    )


if __name__ == "__main__":
    main()
