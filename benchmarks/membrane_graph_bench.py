"""MemBrane fact graph: load 10k and 100k facts, then read latency through MCP tool calls.

Reads are measured end to end through the MCP SDK client over stdio (tool call → structured
result), p50/p95 over many calls. In the same run, the reference Node server
``@modelcontextprotocol/server-memory`` gets the equivalent 10k workload (create_entities +
create_relations + add_observations, then search_nodes / open_nodes).
Targets: p95 of every read ≤ 20 ms at 100k facts; ≥ 5x faster than server-memory's
search_nodes at 10k.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent
NODE_MEMORY = ROOT / "tests/clients/node_modules/@modelcontextprotocol/server-memory/dist/index.js"
PREDICATES = ["USES", "DEPENDS_ON", "RUNS_ON", "PART_OF", "RELATES_TO", "OWNED_BY", "HAS_VERSION"]


def load(db: Path, n_facts: int, seed: int = 7) -> dict[str, float]:
    """Load facts through the service in batches of 1000, recorded over the last 90 days."""
    from pai_core.memory.graph.service import GraphService
    from pai_core.memory.graph.sqlite_store import SqliteGraphStore
    from pai_core.memory.graph.views import FactIn

    rng = random.Random(seed)
    n_entities = max(10, n_facts // 5)
    now = time.time()
    clock_state = {"t": now - 90 * 86400}
    graph = GraphService(SqliteGraphStore(db), clock=lambda: clock_state["t"])
    step = 90 * 86400 / n_facts
    started = time.perf_counter()
    for start in range(0, n_facts, 1000):
        batch = []
        for _ in range(start, min(start + 1000, n_facts)):
            pred = rng.choice(PREDICATES)
            item: dict[str, Any] = {
                "subject": f"entity-{rng.randrange(n_entities)}",
                "predicate": pred,
            }
            if pred == "HAS_VERSION":
                item["value"] = f"{rng.randrange(10)}.{rng.randrange(50)}"
            else:
                item["object"] = f"entity-{rng.randrange(n_entities)}"
                if item["object"] == item["subject"]:
                    item["object"] = f"entity-{(rng.randrange(n_entities) + 1) % n_entities}x"
            batch.append(item)
        clock_state["t"] += step * len(batch)
        graph.remember_many([FactIn.model_validate(item) for item in batch])
    elapsed = time.perf_counter() - started
    stats = graph.stats()
    graph.store.close()
    return {
        "facts_per_s": round(n_facts / elapsed),
        "load_s": round(elapsed, 2),
        "stored_facts": stats["facts"],
        "entities": stats["entities"],
    }


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))] * 1000


async def measure_pai(env: dict[str, str], n_entities: int, calls: int) -> dict[str, Any]:
    rng = random.Random(3)
    params = StdioServerParameters(command=str(BIN / "pai-membrane"), env=env)
    out: dict[str, Any] = {}
    async with stdio_client(params) as (r, w), ClientSession(r, w) as s:
        await s.initialize()
        await s.list_tools()
        workloads = {
            "get_entity": lambda: ("get_entity", {"name": f"entity-{rng.randrange(n_entities)}"}),
            "traverse_depth2": lambda: (
                "traverse",
                {"start": f"entity-{rng.randrange(n_entities)}", "depth": 2},
            ),
            "query_facts": lambda: (
                "query_facts",
                {"subject": f"entity-{rng.randrange(n_entities)}", "predicate": "USES"},
            ),
            "timeline_last_week": lambda: ("timeline", {"since": "last week"}),
        }
        for label, make in workloads.items():
            name, args = make()
            await s.call_tool(name, args)  # warm
            times = []
            for _ in range(calls):
                name, args = make()
                t = time.perf_counter()
                res = await s.call_tool(name, args)
                times.append(time.perf_counter() - t)
                assert not res.is_error or "NotFound" in res.content[0].text, res.content
            out[label] = {"p50_ms": round(pct(times, 0.5), 2), "p95_ms": round(pct(times, 0.95), 2)}
    return out


async def measure_node(tmp: Path, n_facts: int, calls: int) -> dict[str, Any] | None:
    if not NODE_MEMORY.exists() or not shutil.which("node"):
        return None
    rng = random.Random(5)
    n_entities = max(10, n_facts // 5)
    env = {**os.environ, "MEMORY_FILE_PATH": str(tmp / "memory.jsonl")}
    params = StdioServerParameters(command="node", args=[str(NODE_MEMORY)], env=env)
    async with stdio_client(params) as (r, w), ClientSession(r, w) as s:
        await s.initialize()
        t0 = time.perf_counter()
        for start in range(0, n_entities, 500):
            ents = [
                {"name": f"entity-{i}", "entityType": "thing", "observations": []}
                for i in range(start, min(start + 500, n_entities))
            ]
            await s.call_tool("create_entities", {"entities": ents})
        rels, obs = [], []
        for _ in range(n_facts):
            pred = rng.choice(PREDICATES)
            a = f"entity-{rng.randrange(n_entities)}"
            if pred == "HAS_VERSION":
                obs.append({"entityName": a, "contents": [f"version {rng.randrange(10)}"]})
            else:
                rels.append(
                    {"from": a, "to": f"entity-{rng.randrange(n_entities)}", "relationType": pred}
                )
        for i in range(0, len(rels), 500):
            await s.call_tool("create_relations", {"relations": rels[i : i + 500]})
        for i in range(0, len(obs), 500):
            await s.call_tool("add_observations", {"observations": obs[i : i + 500]})
        load_s = time.perf_counter() - t0
        result: dict[str, Any] = {
            "load_s": round(load_s, 2),
            "facts_per_s": round(n_facts / load_s),
        }
        for label, make in {
            "search_nodes": lambda: (
                "search_nodes",
                {"query": f"entity-{rng.randrange(n_entities)}"},
            ),
            "open_nodes": lambda: (
                "open_nodes",
                {"names": [f"entity-{rng.randrange(n_entities)}"]},
            ),
        }.items():
            times = []
            for _ in range(calls):
                name, args = make()
                t = time.perf_counter()
                await s.call_tool(name, args)
                times.append(time.perf_counter() - t)
            result[label] = {
                "p50_ms": round(pct(times, 0.5), 2),
                "p95_ms": round(pct(times, 0.95), 2),
            }
    return result


def rss_of_server(env: dict[str, str], n_entities: int) -> float:
    """Resident memory (MiB) of a membrane server after serving reads."""
    import subprocess

    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "b", "version": "0"},
        },
    }
    proc = subprocess.Popen(
        [str(BIN / "pai-membrane")],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdin and proc.stdout
    msgs = [init, {"jsonrpc": "2.0", "method": "notifications/initialized"}]
    for i in range(50):
        msgs.append(
            {
                "jsonrpc": "2.0",
                "id": 10 + i,
                "method": "tools/call",
                "params": {
                    "name": "traverse",
                    "arguments": {"start": f"entity-{i % n_entities}", "depth": 2},
                },
            }
        )
    for m in msgs:
        proc.stdin.write(json.dumps(m) + "\n")
    proc.stdin.flush()
    answered = 0
    while answered < 51:
        if "id" in json.loads(proc.stdout.readline()):
            answered += 1
    status = Path(f"/proc/{proc.pid}/status").read_text()
    rss_kb = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")))
    proc.stdin.close()
    proc.wait(10)
    proc.stdout.close()
    return round(rss_kb / 1024, 1)


def _cell(reads: dict[str, Any]) -> Any:
    return lambda k: f"{reads[k]['p50_ms']} / {reads[k]['p95_ms']}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1k facts only")
    args = parser.parse_args()
    sizes = [1000] if args.quick else [10_000, 100_000]
    calls = 30 if args.quick else 200
    results: dict[str, Any] = {"benchmark": "membrane_graph", "sizes": {}}
    for n in sizes:
        tmp = Path(tempfile.mkdtemp(prefix="pai-membrane-bench-"))
        try:
            env = {**os.environ, "PAI_HOME": str(tmp / "pai"), "PAI_CONFIG": str(tmp / "x.toml")}
            db = tmp / "pai" / "memory" / "memory.db"
            loaded = load(db, n)
            reads = anyio.run(measure_pai, env, n // 5, calls)
            row: dict[str, Any] = {
                "load": loaded,
                "reads": reads,
                "server_rss_mib": rss_of_server(env, n // 5),
            }
            if n == 10_000 or args.quick:
                node = anyio.run(measure_node, tmp, n, calls)
                if node:
                    row["node_server_memory"] = node
                    row["search_speedup_vs_node_p50"] = round(
                        node["search_nodes"]["p50_ms"] / reads["query_facts"]["p50_ms"], 1
                    )
            results["sizes"][str(n)] = row
            print(json.dumps({n: row}, indent=1), flush=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    results["max_rss_bench_mib"] = round(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
    )
    out = HERE / ("results/quick" if args.quick else "results")  # never over the record
    out.mkdir(parents=True, exist_ok=True)
    (out / "membrane_graph.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        "### MemBrane fact graph (reads through MCP over stdio, p50 / p95 ms)",
        "",
        "| facts | load (facts/s, batches of 1000) | get_entity | traverse d=2 | query_facts "
        "| timeline (last week) | server RSS (MiB) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n, row in results["sizes"].items():
        cell = _cell(row["reads"])
        lines.append(
            f"| {int(n):,} | {row['load']['facts_per_s']:,} | {cell('get_entity')} | "
            f"{cell('traverse_depth2')} | {cell('query_facts')} | "
            f"{cell('timeline_last_week')} | {row['server_rss_mib']} |"
        )
    for n, row in results["sizes"].items():
        node = row.get("node_server_memory")
        if node:
            lines += [
                "",
                f"Reference `@modelcontextprotocol/server-memory` (node) at {int(n):,} "
                f"facts: load {node['facts_per_s']:,} facts/s; search_nodes "
                f"{node['search_nodes']['p50_ms']} / {node['search_nodes']['p95_ms']} ms; "
                f"open_nodes {node['open_nodes']['p50_ms']} / {node['open_nodes']['p95_ms']} ms. "
                f"PAI query_facts is {row['search_speedup_vs_node_p50']}× faster than its "
                "search_nodes (p50).",
            ]
    (out / "membrane_graph.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
