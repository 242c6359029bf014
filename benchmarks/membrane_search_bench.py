"""MemBrane search: ingestion against the raw embedding model, hybrid search latency at 100k
episode chunks, cold start with a populated store, and retrieval quality on the labelled set.

Sizes: 10k notes and 100k episode chunks go into the full-text index for real. Vectors are
real for the notes embedded in the throughput run; the rest get random unit vectors, since
the cost of a search does not depend on the values (the query is embedded for real in every
measured search). --quick shrinks everything for a smoke run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent

import numpy as np  # noqa: E402

from pai_core.memory.graph.views import FactIn  # noqa: E402
from pai_core.settings import MemorySettings, load_settings  # noqa: E402
from pai_membrane.memory import MembraneMemory  # noqa: E402
from pai_membrane.search.bert import NumpyBertEncoder  # noqa: E402
from pai_membrane.search.indexer import Indexer  # noqa: E402
from pai_membrane.search.onnx_bert import OnnxBertEncoder  # noqa: E402
from pai_membrane.search.vectors import LocalEmbedder, SentenceTransformerEmbedder  # noqa: E402
from pai_membrane.settings import MembraneSettings  # noqa: E402
from tests.servers.membrane.retrieval import (  # noqa: E402
    RANKINGS,
    evaluate,
    load_hard_set,
    load_set,
    queries_of,
    write_set,
)

WORDS = [
    "nginx",
    "postgres",
    "redis",
    "dns",
    "zone",
    "secondary",
    "notify",
    "kernel",
    "swap",
    "backup",
    "restore",
    "certificate",
    "renewal",
    "firewall",
    "nftables",
    "ssh",
    "key",
    "rotation",
    "gpu",
    "batch",
    "ollama",
    "model",
    "queue",
    "pipeline",
    "cache",
    "docker",
    "image",
    "build",
    "disk",
    "latency",
    "timeout",
    "retry",
    "webhook",
    "mail",
    "dovecot",
    "postfix",
    "spam",
    "dkim",
    "grafana",
    "prometheus",
    "alert",
    "pager",
    "rollout",
    "canary",
    "deploy",
    "helm",
    "chart",
    "terraform",
    "state",
    "lock",
]


# A Zipf-distributed vocabulary of 5,000 words, like real text: a tiny vocabulary would make
# every document match every query, which no real corpus does.
VOCAB = (
    WORDS
    + [
        f"{a}{b}{c}"
        for a in "bcdfgklmnprstv"
        for b in "aeiou"
        for c in (
            "lan",
            "ron",
            "dex",
            "mir",
            "tos",
            "vek",
            "zul",
            "pha",
            "quo",
            "nix",
            "sar",
            "tem",
            "wid",
            "yor",
            "gen",
        )
    ][:5000]
)
ZIPF = [1 / (rank + 1) for rank in range(len(VOCAB))]
LEARNING_RUNS = 5  # the labelled learnings take ~2 s to embed: the median of a few runs


def sentence(rng: random.Random, n: int = 30) -> str:
    return " ".join(rng.choices(VOCAB, weights=ZIPF, k=n)).capitalize() + "."


def pct(lat: list[float], p: int) -> float:
    """The ``p``th percentile of latencies in seconds, in ms."""
    ordered = sorted(lat)
    return round(ordered[int(p / 100 * (len(ordered) - 1))] * 1000, 1)


def blas_threads() -> Any:
    """threadpoolctl's handle on NumPy's BLAS (search limits it to one thread)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController().select(user_api="blas")


def cold_start(env: dict[str, str], runs: int) -> float:
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "bench", "version": "0"},
        },
    }
    times = []
    for _ in range(runs + 1):
        start = time.perf_counter()
        proc = subprocess.Popen(
            [str(BIN / "pai-membrane")],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert proc.stdin and proc.stdout
        proc.stdin.write(json.dumps(init) + "\n")
        proc.stdin.write('{"jsonrpc":"2.0","method":"notifications/initialized"}\n')
        proc.stdin.write('{"jsonrpc":"2.0","id":2,"method":"tools/list"}\n')
        proc.stdin.flush()
        while json.loads(proc.stdout.readline()).get("id") != 2:
            pass
        times.append(time.perf_counter() - start)
        proc.stdin.close()
        proc.wait(10)
        proc.stdout.close()
    return statistics.median(times[1:]) * 1000


def eval_memory(home: Path, *, onnx: bool = True) -> MembraneMemory:
    """A memory of its own for a labelled set; its vectors are embedded by the caller (by
    ONNX Runtime where installed, or without it: the NumPy encoder and sentence-transformers)."""
    settings = load_settings(
        MembraneSettings,
        home / "x.toml",
        data_dir=home,
        watch_vault=False,
        memory=MemorySettings(db_path=home / "memory.db", vault_path=home / "vault"),
    )
    memory = MembraneMemory(settings)
    memory.indexer.stop()  # embedded by the caller, timed
    if not onnx:
        memory.__dict__["embedder"] = LocalEmbedder(onnx=False)  # before search is built
    return memory


def learnings_ingestion(m: MembraneMemory, raw_model: Any, warm: list[str]) -> dict[str, float]:
    """Embed the learnings written into ``m`` through its index (until searchable, then with
    their parts), and the raw model on their whole texts: docs/s and the ratios."""
    assert m.embedder is not None
    m.embedder.embed(warm)  # loaded and warm, as the raw one
    conn = m.index.db.conn()
    whole = [r[0][:2000] for r in conn.execute("SELECT title || char(10) || body FROM s_docs")]
    t = time.perf_counter()
    m.search.embed_pending(parts=False)
    searchable = time.perf_counter() - t
    m.search.embed_pending()
    with_parts = time.perf_counter() - t
    t = time.perf_counter()
    raw_model.embed(whole)
    raw = len(whole) / (time.perf_counter() - t)
    return {
        "searchable_docs_per_s": len(whole) / searchable,
        "ingestion_docs_per_s": len(whole) / with_parts,
        "raw_model_texts_per_s": raw,
        "searchable_vs_raw": len(whole) / searchable / raw,
        "ingestion_vs_raw": len(whole) / with_parts / raw,
    }


def first_embedding(runs: int) -> dict[str, int]:
    """Median ms from nothing loaded to a query's vector, per engine, each in a fresh process
    (what the first search of a server waits for)."""
    code = (
        "import sys, time\n"
        "t = time.perf_counter()\n"
        "from pai_membrane.search import vectors\n"
        "name = vectors.default_model_path()\n"
        "if sys.argv[1] == 'onnxruntime':\n"
        "    from pai_membrane.search.onnx_bert import OnnxBertEncoder as E\n"
        "elif sys.argv[1] == 'numpy':\n"
        "    from pai_membrane.search.bert import NumpyBertEncoder as E\n"
        "else:\n"
        "    E = vectors.SentenceTransformerEmbedder\n"
        "E(name).embed(['where does membrane run?'])\n"
        "print(time.perf_counter() - t)\n"
    )
    out = {}
    for engine in ("onnxruntime", "numpy", "sentence_transformers"):
        times = [
            float(
                subprocess.run(
                    [sys.executable, "-c", code, engine],
                    capture_output=True,
                    text=True,
                    check=True,
                    timeout=300,
                ).stdout.split()[-1]
            )
            for _ in range(runs)
        ]
        out[engine] = round(statistics.median(times) * 1000)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n_notes, n_chunks = (500, 5000) if args.quick else (10_000, 100_000)
    rng = random.Random(11)
    tmp = Path(tempfile.mkdtemp(prefix="pai-search-bench-"))
    result: dict[str, Any] = {
        "benchmark": "membrane_search",
        "notes": n_notes,
        "episode_chunks": n_chunks,
    }
    try:
        env = {
            **os.environ,
            "PAI_HOME": str(tmp / "pai"),
            "PAI_CONFIG": str(tmp / "x.toml"),
            "PAI_MEMBRANE_WATCH_VAULT": "false",
        }
        empty_env = {**env, "PAI_HOME": str(tmp / "empty")}
        settings = load_settings(
            MembraneSettings,
            tmp / "x.toml",
            data_dir=tmp / "pai" / "membrane",
            watch_vault=False,
            memory=MemorySettings(
                db_path=tmp / "pai" / "memory" / "memory.db",
                vault_path=tmp / "pai" / "memory" / "vault",
            ),
        )
        memory = MembraneMemory(settings)
        memory.indexer.stop()  # the phases below embed on purpose; the indexer is timed apart
        vault, search = memory.ready_vault(), memory.search
        assert memory.embedder is not None, "install the embeddings extra to run this benchmark"
        warm = [sentence(rng) for _ in range(64)]
        memory.embedder.embed(warm)  # load and warm the model
        # the peer: the model run as its users run it, by sentence-transformers (torch)
        raw_model = SentenceTransformerEmbedder(memory.embedder.model_name)
        raw_model.embed(warm)
        # notes: written through the vault (atomic files + full-text index)
        t = time.perf_counter()
        for i in range(n_notes):
            vault.write_note(f"3-Resources/bench/n{i}.md", f"# Note {i}\n\n{sentence(rng, 60)}")
        result["note_writes_per_s"] = round(n_notes / (time.perf_counter() - t))
        # ingestion = embedding pending documents through the index (hashing, batching, BLOBs)
        conn = memory.index.db.conn()
        pending = conn.execute("SELECT count(*) FROM s_docs").fetchone()[0]
        # ingestion: the real path, embedding every pending note through the index
        texts = [r[0] for r in conn.execute("SELECT title || char(10) || body FROM s_docs")]
        t = time.perf_counter()
        embedded = search.embed_pending()
        ingest = embedded / (time.perf_counter() - t)
        # the raw model on the same texts (truncated as ingestion truncates them)
        t = time.perf_counter()
        raw_model.embed([x[:2000] for x in texts])
        raw = len(texts) / (time.perf_counter() - t)
        result.update(
            raw_model_texts_per_s=round(raw, 1),
            ingestion_docs_per_s=round(ingest, 1),
            ingestion_vs_raw=round(ingest / raw, 2),
            documents=pending,
        )
        # 100k episode chunks into the full-text index, synthetic vectors for the rest
        t = time.perf_counter()
        with memory.index.write() as wconn:
            for i in range(n_chunks):
                memory.index.upsert(
                    wconn,
                    "episode",
                    f"bench-{i}",
                    "user in bench",
                    sentence(rng, 40),
                    at=1.7e9 + i,
                    area="bench",
                )
        result["chunk_index_per_s"] = round(n_chunks / (time.perf_counter() - t))
        missing = conn.execute(
            "SELECT d.id FROM s_docs d LEFT JOIN s_vectors v ON v.doc_id=d.id "
            "WHERE v.doc_id IS NULL"
        ).fetchall()
        noise = np.random.default_rng(3).standard_normal((len(missing), 384)).astype("float32")
        noise /= np.linalg.norm(noise, axis=1, keepdims=True)
        with memory.index.write() as wconn:
            search.vectors.add(wconn, [(m[0], f"r{m[0]}", noise[j]) for j, m in enumerate(missing)])
        queries = [sentence(rng, 6) for _ in range(60)]
        search.search(sentence(rng, 6))  # load the matrix once
        embedder = memory.embedder
        query_engine = embedder.small  # what search uses: ONNX Runtime where installed
        numpy_encoder = NumpyBertEncoder(embedder.model_name or "")
        numpy_encoder.embed(warm)
        # hybrid_torch: the same searches with the query embedded by sentence-transformers,
        # as before the NumPy encoder (torch's thread pool then slows the matrix product too)
        for label, mode, small in (
            ("hybrid", "hybrid", query_engine),
            ("text", "text", query_engine),
            ("hybrid_numpy", "hybrid", numpy_encoder),
            ("hybrid_torch", "hybrid", raw_model),
        ):
            embedder.small = small
            search._query_vectors.clear()  # every query embedded afresh
            lat = []
            for q in queries:
                t = time.perf_counter()
                search.search(q, mode=mode)  # type: ignore[arg-type]
                lat.append(time.perf_counter() - t)
            lat.sort()
            result[f"search_{label}_p50_ms"] = round(lat[len(lat) // 2] * 1000, 1)
            result[f"search_{label}_p95_ms"] = round(lat[int(0.95 * (len(lat) - 1))] * 1000, 1)
        embedder.small = query_engine
        # search runs NumPy's BLAS on one thread (pai_membrane.search.blas); against the default
        # threads, one query each way in turn, so both see the same load
        blas = blas_threads()
        one: dict[str, list[float]] = {"hybrid": [], "embed": []}
        default: dict[str, list[float]] = {"hybrid": [], "embed": []}
        for q in queries:
            for got, threads in ((one, 1), (default, os.cpu_count() or 1)):
                with blas.limit(limits=threads):
                    search._query_vectors.clear()
                    t = time.perf_counter()
                    search.search(q)
                    got["hybrid"].append(time.perf_counter() - t)
                    t = time.perf_counter()
                    numpy_encoder.embed([q])
                    got["embed"].append(time.perf_counter() - t)
        for label, got in (("one", one), ("default", default)):
            for what, lat in got.items():
                result[f"blas_{label}_{what}_p50_ms"] = pct(lat, 50)
                result[f"blas_{label}_{what}_p95_ms"] = pct(lat, 95)
        result["blas_default_threads"] = os.cpu_count() or 1
        result["load_average"] = os.getloadavg()[0]
        # a note written, then searched at once: its vector is embedded and patched into the
        # matrix in place (a reload of every vector would cost ~1 s at this size)
        loads = search.vectors.full_loads
        lat = []
        for i in range(20):
            vault.write_note(f"3-Resources/fresh/f{i}.md", f"# Fresh {i}\n\n{sentence(rng, 60)}")
            t = time.perf_counter()
            search.search(queries[i])
            lat.append(time.perf_counter() - t)
        lat.sort()
        result["search_after_write_p50_ms"] = round(lat[len(lat) // 2] * 1000, 1)
        result["search_after_write_p95_ms"] = round(lat[int(0.95 * (len(lat) - 1))] * 1000, 1)
        result["matrix_reloads_during_writes"] = search.vectors.full_loads - loads
        # remember_facts of 1,000 facts, then search at once while their vectors are computed
        # in the background: the write indexes them for full text, search only reads
        indexer = Indexer(search.sync_facts, search.embed_pending, activity=search.activity)
        indexer.start()
        lat, settle = [], []
        for round_ in range(3):
            facts = [
                FactIn(
                    subject=f"svc-{round_}-{i}",
                    predicate="RUNS_ON",
                    object=f"host-{i % 50}",
                    note=sentence(rng, 8),
                )
                for i in range(1000)
            ]
            t = time.perf_counter()
            memory.graph.remember_many(facts)
            search.sync_facts()  # what membrane's remember_facts does before it returns
            indexer.kick()
            result.setdefault("bulk_write_1000_facts_ms", []).append(
                round((time.perf_counter() - t) * 1000, 1)
            )
            for q in queries[:15]:
                t = time.perf_counter()
                search.search(q)
                lat.append(time.perf_counter() - t)
            t = time.perf_counter()
            while memory.index.waiting_for_vectors():
                time.sleep(0.05)
            settle.append(time.perf_counter() - t)
        indexer.stop()
        lat.sort()
        result["search_after_bulk_write_p50_ms"] = round(lat[len(lat) // 2] * 1000, 1)
        result["search_after_bulk_write_p95_ms"] = round(lat[int(0.95 * (len(lat) - 1))] * 1000, 1)
        result["bulk_vectors_settled_s"] = round(max(settle), 1)
        t = time.perf_counter()
        search.vectors._reload(conn, search.vectors._seq)
        result["matrix_full_reload_ms"] = round((time.perf_counter() - t) * 1000, 1)
        # the query embedding alone, by each engine (the NumPy encoder is what search uses)
        engines = {
            "onnxruntime": query_engine if isinstance(query_engine, OnnxBertEncoder) else None,
            "numpy": numpy_encoder,
            "sentence_transformers": raw_model,
        }
        for name, engine in engines.items():
            if engine is None:
                continue
            lat = []
            for q in queries:
                t = time.perf_counter()
                engine.embed([q])
                lat.append(time.perf_counter() - t)
            lat.sort()
            result[f"query_embed_{name}_p50_ms"] = round(lat[len(lat) // 2] * 1000, 2)
            result[f"query_embed_{name}_p95_ms"] = round(lat[int(0.95 * (len(lat) - 1))] * 1000, 2)
        result["cold_start_populated_ms"] = round(cold_start(env, 5), 1)
        result["cold_start_empty_ms"] = round(cold_start(empty_env, 5), 1)
        result["cold_start_ratio"] = round(
            result["cold_start_populated_ms"] / result["cold_start_empty_ms"], 3
        )
        result["first_embedding_ms"] = first_embedding(3)
        # retrieval quality on the labelled set, in a store of its own; before that, learnings
        # are embedded whole (then searchable by meaning), then by part (title, problem,
        # solution, takeaway) once nothing waits for a whole-text vector: both against the raw
        # model embedding only their whole texts, in turn, in fresh stores, LEARNING_RUNS times
        hard = load_hard_set()
        learning_runs: dict[str, list[dict[str, float]]] = {"without_onnx": [], "ours": []}
        for run in range(LEARNING_RUNS):
            for which, measured in learning_runs.items():  # "ours" last
                m2 = eval_memory(tmp / f"eval-{which}-{run}", onnx=which == "ours")
                paths = write_set(m2.ready_vault(), hard["learnings"])
                measured.append(learnings_ingestion(m2, raw_model, warm))
        # the retrieval below reads the last store embedded by MemBrane's own engines: m2
        for which, measured in learning_runs.items():
            prefix = "learnings" if which == "ours" else "learnings_without_onnx"
            for key in measured[0]:
                result[f"{prefix}_{key}"] = round(statistics.median(m[key] for m in measured), 2)
        result["retrieval_hard"] = {
            r: evaluate(m2.search, hard["queries"], paths, r) for r in RANKINGS
        }
        result["retrieval_exact"] = {
            r: evaluate(m2.search, hard["exact"], paths, r) for r in RANKINGS
        }
        m3 = eval_memory(tmp / "eval3")
        items = load_set()
        paths = write_set(m3.ready_vault(), items)
        m3.search.embed_pending()
        result["retrieval"] = {
            r: evaluate(m3.search, queries_of(items), paths, r) for r in RANKINGS
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out = HERE / ("results/quick" if args.quick else "results")  # never over the record
    out.mkdir(parents=True, exist_ok=True)
    (out / "membrane_search.json").write_text(json.dumps(result, indent=2) + "\n")
    r = result
    ours = "ONNX Runtime" if r.get("query_embed_onnxruntime_p50_ms") else "NumPy encoder"
    first = r["first_embedding_ms"]
    lines = [
        f"### MemBrane search ({n_notes:,} notes + {n_chunks:,} episode chunks)",
        "",
        f"Documents and queries are embedded by {ours} (what MemBrane uses); the peer is the "
        "same model run by sentence-transformers (torch), measured in the same run.",
        "",
        "| what | result |",
        "|---|---:|",
        f"| raw embedding model (all-MiniLM-L6-v2 by sentence-transformers, CPU, batch 32) | {r['raw_model_texts_per_s']} texts/s |",
        f"| ingestion through the index (hash, batch, store) | {r['ingestion_docs_per_s']} docs/s "
        f"({r['ingestion_vs_raw']}× raw; target ≥ 0.8×) |",
        f"| ingestion of learnings until searchable (whole-text vectors), against the raw "
        f"model embedding them whole, median of {LEARNING_RUNS} runs | "
        f"{r['learnings_searchable_docs_per_s']} / {r['learnings_raw_model_texts_per_s']} docs/s "
        f"({r['learnings_searchable_vs_raw']}×; target ≥ 0.8×) |",
        f"| ingestion of learnings including their part vectors (title, problem, solution, "
        f"takeaway) | {r['learnings_ingestion_docs_per_s']} docs/s "
        f"({r['learnings_ingestion_vs_raw']}× raw; target ≥ 0.8×) |",
        f"| the same without ONNX Runtime (sentence-transformers embeds the batches): until "
        f"searchable / including parts | {r['learnings_without_onnx_searchable_vs_raw']}× / "
        f"{r['learnings_without_onnx_ingestion_vs_raw']}× raw |",
        f"| note writes (atomic file + full-text index) | {r['note_writes_per_s']}/s |",
        f"| hybrid search incl. query embedding, p50 / p95 | {r['search_hybrid_p50_ms']} / "
        f"{r['search_hybrid_p95_ms']} ms (target p95 ≤ 50 ms) |",
        f"| full-text only, p50 / p95 | {r['search_text_p50_ms']} / {r['search_text_p95_ms']} ms |",
        f"| the same hybrid search, query embedded by the NumPy encoder / by "
        f"sentence-transformers, p50 / p95 | {r['search_hybrid_numpy_p50_ms']} / "
        f"{r['search_hybrid_numpy_p95_ms']} ms; {r['search_hybrid_torch_p50_ms']} / "
        f"{r['search_hybrid_torch_p95_ms']} ms |",
        f"| search right after remember_facts of 1,000 facts (vectors computed in the "
        f"background meanwhile), p50 / p95 | {r['search_after_bulk_write_p50_ms']} / "
        f"{r['search_after_bulk_write_p95_ms']} ms (target p95 ≤ 100 ms; the write itself "
        f"{max(r['bulk_write_1000_facts_ms'])} ms; all vectors in after "
        f"{r['bulk_vectors_settled_s']} s) |",
        f"| search right after writing a note (words only until its vector lands), p50 / p95 | "
        f"{r['search_after_write_p50_ms']} / {r['search_after_write_p95_ms']} ms "
        f"({r['matrix_reloads_during_writes']} full reloads; one takes "
        f"{r['matrix_full_reload_ms']} ms) |",
        f"| query embedding, ONNX Runtime / NumPy encoder / sentence-transformers, p50 / p95 | "
        f"{r.get('query_embed_onnxruntime_p50_ms')} / {r.get('query_embed_onnxruntime_p95_ms')}"
        f" ms; {r['query_embed_numpy_p50_ms']} / {r['query_embed_numpy_p95_ms']} ms; "
        f"{r['query_embed_sentence_transformers_p50_ms']} / "
        f"{r['query_embed_sentence_transformers_p95_ms']} ms |",
        f"| a fresh process's first query vector (imports and model load included), "
        f"ONNX Runtime / NumPy encoder / sentence-transformers | {first['onnxruntime']} / "
        f"{first['numpy']} / {first['sentence_transformers']} ms |",
        f"| search with NumPy's BLAS on one thread (what search sets) / on "
        f"{r['blas_default_threads']} threads, one query each way in turn (load "
        f"{r['load_average']:.1f}), p50 / p95 | {r['blas_one_hybrid_p50_ms']} / "
        f"{r['blas_one_hybrid_p95_ms']} ms against {r['blas_default_hybrid_p50_ms']} / "
        f"{r['blas_default_hybrid_p95_ms']} ms |",
        f"| the NumPy encoder's query embedding, one BLAS thread / default, p50 / p95 | "
        f"{r['blas_one_embed_p50_ms']} / {r['blas_one_embed_p95_ms']} ms against "
        f"{r['blas_default_embed_p50_ms']} / {r['blas_default_embed_p95_ms']} ms |",
        f"| cold start, populated / empty store | {r['cold_start_populated_ms']} / "
        f"{r['cold_start_empty_ms']} ms ({r['cold_start_ratio']}×; target ≤ 1.15×) |",
    ]
    names = {
        "text": "plain BM25 (`mode=text`)",
        "whole": "vectors alone (note text embedded whole)",
        "vector": "`search` by meaning (`mode=vector`: whole + parts)",
        "hybrid": "`search` (hybrid: whole + parts, BM25 lift, graph)",
    }
    for key, title in (
        (
            "retrieval_hard",
            "the near-miss set (90 learnings: 45 targets, 45 distractors; 55 paraphrased queries)",
        ),
        ("retrieval", "the first labelled set (40 learnings, paraphrased queries)"),
        (
            "retrieval_exact",
            "exact-term queries on the near-miss set (12: options, errors, a host)",
        ),
    ):
        lines += ["", f"Retrieval on {title}:", "", "| ranking | recall@1 | recall@5 | MRR |"]
        lines.append("|---|---:|---:|---:|")
        for mode, score in r[key].items():
            lines.append(
                f"| {names[mode]} | {score['recall@1']} | {score['recall@5']} | {score['mrr']} |"
            )
    (out / "membrane_search.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
