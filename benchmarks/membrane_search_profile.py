"""MemBrane hybrid search taken apart: p50 / p95 of each stage of a search at the benchmark's
size (10k notes + 100k episode chunks), to see which stages push p95 up.

Not part of the benchmark record (it writes nothing into benchmarks/results/). The store is
built once into a directory given by --store (reused when it exists): the documents go into the
full-text index for real, every document gets a random unit vector (the cost of a search does
not depend on the values) and a share of the notes get part vectors, as learnings have; a few
hundred facts name words the queries use, so entity matching and the graph have work. Every
query is embedded afresh by the NumPy encoder, with BLAS on one thread, as in the benchmark.

With ``--before REV`` it measures instead the whole search as it was at git revision REV (its
full-text index, vector store and search service) beside today's, query by query in turn over
the same store, and counts the queries whose hits differ; ``--at REV`` times the stages of
REV's search.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import types
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
from membrane_search_bench import VOCAB, WORDS, eval_memory, sentence  # noqa: E402

from pai_core.memory.graph.views import FactIn  # noqa: E402
from pai_membrane.memory import MembraneMemory  # noqa: E402
from pai_membrane.search.service import MemorySearch  # noqa: E402

PART_SHARE = 0.2  # of the notes, given 4 part vectors each


def build(home: Path, n_notes: int, n_chunks: int) -> None:
    rng = random.Random(11)
    memory = eval_memory(home)
    index, search = memory.index, memory.search
    memory.indexer.stop()
    with index.write() as conn:
        for i in range(n_notes):
            text = sentence(rng, 60)
            index.upsert(conn, "note", f"n{i}.md", f"Note {i}", text, at=1.6e9 + i)
        for i in range(n_chunks):  # as the benchmark's episode chunks
            chunk, at = sentence(rng, 40), 1.7e9 + i
            index.upsert(conn, "episode", f"bench-{i}", "user", chunk, at=at, area="bench")
    ids = [r[0] for r in index.db.conn().execute("SELECT id FROM s_docs ORDER BY id")]
    gen = np.random.default_rng(3)
    vecs = gen.standard_normal((len(ids), 384)).astype("float32")
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    with index.write() as conn:
        search.vectors.add(conn, [(d, f"r{d}", vecs[j]) for j, d in enumerate(ids)])
    notes = ids[:n_notes]
    parted = rng.sample(notes, int(PART_SHARE * n_notes))
    parts = gen.standard_normal((len(parted), 4, 384)).astype("float32")
    parts /= np.linalg.norm(parts, axis=2, keepdims=True)
    with index.write() as conn:
        search.vectors.add_parts(conn, [(d, f"r{d}", parts[j]) for j, d in enumerate(parted)])
    facts = [
        FactIn(subject=w, predicate="RUNS_ON", object=f"host-{i}", note=sentence(rng, 8))
        for w in WORDS
        for i in range(5)
    ]
    memory.graph.remember_many(facts)
    search.sync_facts()
    with index.write() as conn:
        rows = conn.execute("SELECT p.doc_id FROM s_pending p").fetchall()
        fact_ids = [r[0] for r in rows]
        fvecs = gen.standard_normal((len(fact_ids), 384)).astype("float32")
        fvecs /= np.linalg.norm(fvecs, axis=1, keepdims=True)
        search.vectors.add(conn, [(d, f"f{d}", fvecs[j]) for j, d in enumerate(fact_ids)])
    (home / "built").write_text("ok\n")


class Stages:
    """Wall time per named stage within one search."""

    def __init__(self) -> None:
        self.now: dict[str, float] = defaultdict(float)
        self.runs: dict[str, list[float]] = defaultdict(list)
        self.names: list[str] = []

    def wrap(self, owner: Any, name: str, stage: str) -> None:
        """Time ``owner.name`` as ``stage``; run on another thread than the search's, it is
        timed apart (beside the rest, so not part of the sum)."""
        inner: Callable[..., Any] = getattr(owner, name)
        beside = f" ({stage.strip(' ()')}, beside)"
        self.names += [stage, beside]
        caller = threading.get_ident()

        def timed(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                key = stage if threading.get_ident() == caller else beside
                self.now[key] += time.perf_counter() - t

        setattr(owner, name, timed)

    def close(self, total: float) -> None:
        inside = sum(v for k, v in self.now.items() if not k.startswith(" "))
        self.now["rest"] = total - inside
        self.now["TOTAL"] = total
        for k in [*self.names, "rest", "TOTAL"]:
            self.runs[k].append(self.now[k])
        self.now = defaultdict(float)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[int(p / 100 * (len(ordered) - 1))] * 1000


_MODULES = {
    "fulltext": "shared/pai_core/memory/fulltext.py",
    "vector_store": "servers/membrane/pai_membrane/search/vector_store.py",
    "service": "servers/membrane/pai_membrane/search/service.py",
}


def search_at(rev: str, memory: MembraneMemory) -> MemorySearch:
    """The search of ``rev`` (its full-text index, vector store and service modules) over the
    same database, graph and embedder, to measure beside the current code in one process."""
    loaded: dict[str, Any] = {}
    for name, path in _MODULES.items():
        text = subprocess.run(
            ["git", "show", f"{rev}:{path}"], cwd=HERE.parent, check=True, capture_output=True
        ).stdout
        module = types.ModuleType(f"before_{name}")
        sys.modules[module.__name__] = module  # its dataclasses look their module up
        exec(compile(text, f"{rev}:{path}", "exec"), module.__dict__)
        loaded[name] = module
    index = loaded["fulltext"].SearchIndex(memory.index.db)
    vectors = loaded["vector_store"].NumpyVectorStore()
    search: MemorySearch = loaded["service"].MemorySearch(
        index, memory.graph, memory.episodes, memory.embedder, vectors=vectors
    )
    return search


def same(a: list[Any], b: list[Any]) -> bool:
    return [(h.id, h.score, h.why, h.snippet) for h in a] == [
        (h.id, h.score, h.why, h.snippet) for h in b
    ]


def compare(
    before: MemorySearch, after: MemorySearch, queries: list[str], rounds: int, mode: Any
) -> None:
    """Both searches on every query in turn (which goes first alternates), and whether they
    return the same hits."""
    lat: dict[str, list[float]] = {"before": [], "after": []}
    differ = 0
    for r in range(rounds):
        for i, q in enumerate(queries):
            order = [("before", before), ("after", after)]
            if (i + r) % 2:
                order.reverse()
            got = {}
            for label, search in order:
                search._query_vectors.clear()
                t = time.perf_counter()
                got[label] = search.search(q, mode=mode)
                lat[label].append(time.perf_counter() - t)
            differ += not same(got["before"], got["after"])
    print(f"{mode}: {len(queries)} queries x {rounds}, A/B in turn; load {os.getloadavg()}")
    for label, values in lat.items():
        print(f"{label:8} p50 {pct(values, 50):7.2f}  p95 {pct(values, 95):7.2f} ms")
    print(f"queries whose hits differ: {differ}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=Path(tempfile.gettempdir()) / "pai-prof")
    parser.add_argument("--notes", type=int, default=10_000)
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--before", metavar="REV", help="measure REV's search beside this one")
    parser.add_argument("--mode", default="hybrid", choices=["hybrid", "text", "vector"])
    parser.add_argument("--at", metavar="REV", help="time the stages of REV's search instead")
    args = parser.parse_args()
    if not (args.store / "built").exists():
        t = time.perf_counter()
        build(args.store, args.notes, args.chunks)
        print(f"built {args.store} in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    memory = eval_memory(args.store)
    search = memory.search
    memory.indexer.stop()
    rng = random.Random(5)
    assert memory.embedder is not None
    queries = [sentence(rng, 6) for _ in range(args.queries)]
    # a few queries name an entity the graph knows
    queries += [f"{w} {' '.join(rng.choices(VOCAB[:300], k=4))}" for w in WORDS[:10]]
    search.search("warm up the matrix")
    if args.before:
        before = search_at(args.before, memory)
        before.search("warm up the matrix")
        compare(before, search, queries, args.rounds, args.mode)
        return 0
    if args.at:
        search = search_at(args.at, memory)
        search.search("warm up the matrix")
    stages = Stages()
    stages.wrap(memory.embedder, "embed", "embed query")
    stages.wrap(search.index, "search", "fts every_word")
    stages.wrap(search.index, "telling_words", " (fts: word counts)")
    stages.wrap(search.vectors, "search", "vector search")
    stages.wrap(search.vectors, "_refresh", " (vector: refresh)")
    stages.wrap(search.index, "docs", "index.docs")
    stages.wrap(search, "_by_parts", "_by_parts")
    stages.wrap(search, "_query_entities", "entities")
    stages.wrap(search.graph, "neighbours", "neighbours")
    stages.wrap(search.vectors, "pending", "vectors.pending")
    stages.wrap(search.graph, "fact_view", "fact views")
    for _ in range(args.rounds):
        for q in queries:
            search._query_vectors.clear()
            t = time.perf_counter()
            search.search(q, mode=args.mode)
            stages.close(time.perf_counter() - t)
    print(f"{len(queries)} queries x {args.rounds}; load {os.getloadavg()}")
    print(f"{'stage':28} {'p50 ms':>8} {'p95 ms':>8} {'mean':>8}")
    for k, v in stages.runs.items():
        if not any(v):
            continue  # not run on this thread (or at all)
        print(f"{k:28} {pct(v, 50):8.2f} {pct(v, 95):8.2f} {statistics.mean(v) * 1000:8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
