"""The labelled retrieval set (40 learnings, each with a paraphrased query that shares few
words with it) and its metrics: recall@5 and MRR per search mode."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pai_core.memory.vault.service import Vault
from pai_membrane.search.service import MemorySearch

SET = Path(__file__).parent / "data" / "retrieval_set.json"


def load_set() -> list[dict[str, Any]]:
    return list(json.loads(SET.read_text()))


def write_set(vault: Vault, items: list[dict[str, Any]]) -> dict[int, str]:
    """Write every learning into the vault; item id → note path."""
    return {
        it["id"]: vault.write_learning(
            it["title"], it["problem"], it["solution"], it["takeaway"]
        ).path
        for it in items
    }


def evaluate(
    search: MemorySearch, items: list[dict[str, Any]], paths: dict[int, str], mode: str
) -> dict[str, float]:
    recall5 = mrr = 0.0
    for it in items:
        hits = search.search(it["query"], kinds=["notes"], limit=10, mode=mode)  # type: ignore[arg-type]
        ranked = [h.id for h in hits]
        target = paths[it["id"]]
        if target in ranked[:5]:
            recall5 += 1
        if target in ranked:
            mrr += 1 / (ranked.index(target) + 1)
    n = len(items)
    return {"recall@5": round(recall5 / n, 3), "mrr": round(mrr / n, 3)}
