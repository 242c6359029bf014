"""The labelled retrieval sets and their metrics: recall@1, recall@5 and MRR per ranking.

Two sets, written by hand: ``retrieval_set.json`` (40 learnings, each with a paraphrased query
that shares few words with it) and ``hard_set.json`` (45 targets, each with a near-miss
distractor on the same topic with a different problem or fix, 55 paraphrased queries, and
exact-term queries naming an option, an error string or a host).

Rankings: ``text`` (BM25), ``whole`` (vectors alone: the note's whole text embedded, nearest
by cosine, nothing else), and the search modes ``vector`` and ``hybrid`` (what ``search`` does).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pai_core.memory.vault.service import Vault
from pai_membrane.search.service import MemorySearch

DATA = Path(__file__).parent / "data"
SET = DATA / "retrieval_set.json"
HARD_SET = DATA / "hard_set.json"
RANKINGS = ("text", "whole", "vector", "hybrid")


def load_set() -> list[dict[str, Any]]:
    return list(json.loads(SET.read_text()))


def load_hard_set() -> dict[str, Any]:
    """``learnings`` (distractors carry ``near``: the target they imitate), ``queries`` and
    ``exact`` (each ``{"query", "target"}``, target = a learning id)."""
    return dict(json.loads(HARD_SET.read_text()))


def queries_of(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The queries of the first set, in the hard set's shape."""
    return [{"query": it["query"], "target": it["id"]} for it in items]


def write_set(vault: Vault, items: list[dict[str, Any]]) -> dict[int, str]:
    """Write every learning into the vault; item id → note path."""
    return {
        it["id"]: vault.write_learning(
            it["title"], it["problem"], it["solution"], it["takeaway"]
        ).path
        for it in items
    }


def ranked(search: MemorySearch, query: str, ranking: str, limit: int = 10) -> list[str]:
    """Note paths, best first, by one ranking."""
    if ranking == "whole":
        assert search.embedder is not None
        conn = search.index.db.conn()
        nearest = search.vectors.search(conn, search.embedder.embed([query])[0], limit)
        docs = search.index.docs([d for d, _ in nearest], kinds=["note"])
        return [docs[d].ref for d, _ in nearest if d in docs]
    hits = search.search(query, kinds=["notes"], limit=limit, mode=ranking)  # type: ignore[arg-type]
    return [h.id for h in hits]


def evaluate(
    search: MemorySearch, queries: list[dict[str, Any]], paths: dict[int, str], ranking: str
) -> dict[str, float]:
    r1 = r5 = mrr = 0.0
    for q in queries:
        found = ranked(search, q["query"], ranking)
        target = paths[q["target"]]
        r1 += found[:1] == [target]
        r5 += target in found[:5]
        mrr += 1 / (found.index(target) + 1) if target in found else 0.0
    n = len(queries)
    return {"recall@1": round(r1 / n, 3), "recall@5": round(r5 / n, 3), "mrr": round(mrr / n, 3)}
