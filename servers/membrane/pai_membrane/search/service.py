"""One search over facts, notes and episodes; and recall, a context pack within a budget.

Ranking is full-text BM25 (FTS5) adjusted by what the memory knows: current facts rank above
superseded or retracted ones (which are hidden unless history is asked for), and documents that
mention an entity named in the query, or one hop from it in the graph, are lifted (graph
proximity). Facts are indexed incrementally from the graph before each search.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from pai_core.errors import InvalidInput
from pai_membrane.episodes.ingest import EpisodeStore
from pai_membrane.graph.service import GraphService
from pai_membrane.search.index import SearchIndex
from pai_membrane.timeparse import iso

__all__ = ["KINDS", "MemorySearch", "SearchHit"]

KINDS = ("facts", "notes", "episodes")
_KIND = {"facts": "fact", "notes": "note", "episodes": "episode"}
GRAPH_BOOST = 1.5
STALE_FACTOR = 0.3


@dataclass
class SearchHit:
    kind: str
    id: str
    title: str
    snippet: str
    score: float
    time: str | None
    why: list[str]


class MemorySearch:
    def __init__(self, index: SearchIndex, graph: GraphService, episodes: EpisodeStore) -> None:
        self.index = index
        self.graph = graph
        self.episodes = episodes
        self._names: tuple[float, list[str]] = (0.0, [])

    def sync_facts(self) -> int:
        """Index facts recorded since the last sync; return how many."""
        mark = float(self.index.meta("facts_watermark", "0") or 0)
        views = self.graph.facts_recorded_since(mark)
        if not views:
            return 0
        newest = mark
        with self.index.write() as conn:
            for v in views:
                newest = max(newest, _ts(v.recorded_at))
                if v.predicate == "MENTIONS" and v.subject.startswith("note:"):
                    continue  # a note's links: the note itself is indexed
                obj = v.object or v.value or ""
                title = f"{v.subject} {v.predicate} {obj}"
                body = f"{title}. {v.note}".strip()
                at = _ts(v.recorded_at)
                ents = [v.subject] + ([v.object] if v.object else [])
                self.index.upsert(conn, "fact", v.id, title, body, at=at, entities=ents)
            self.index.set_meta(conn, "facts_watermark", repr(newest))
        return len(views)

    def _entity_names(self) -> list[str]:
        stamp, names = self._names
        if time.monotonic() - stamp > 30:
            names = [n for n, _aliases in self.graph.entity_names()]
            self._names = (time.monotonic(), names)
        return names

    def _query_entities(self, query: str) -> list[str]:
        low = f" {query.casefold()} "
        return [
            n
            for n in self._entity_names()
            if f" {n.casefold()} " in low
            or f" {n.casefold()}?" in low
            or f" {n.casefold()}." in low
        ]

    def search(
        self,
        query: str,
        *,
        kinds: list[str] | None = None,
        since: float | None = None,
        until: float | None = None,
        area: str | None = None,
        entity: str | None = None,
        include_history: bool = False,
        limit: int = 10,
    ) -> list[SearchHit]:
        if not query or not query.strip():
            raise InvalidInput("query is empty", field="query")
        if not 1 <= limit <= 100:
            raise InvalidInput("limit must be 1..100", field="limit")
        chosen = kinds or list(KINDS)
        bad = [k for k in chosen if k not in KINDS]
        if bad:
            raise InvalidInput(
                f"unknown kinds {bad}", field="kinds", hint="Use facts, notes, episodes."
            )
        if "facts" in chosen:
            self.sync_facts()
        raw = self.index.search(
            query,
            kinds=[_KIND[k] for k in chosen],
            since=since,
            until=until,
            area=area,
            entity=entity,
            limit=limit * 4,
        )
        mentioned = self._query_entities(query)
        near = {n.casefold() for n in self.graph.neighbours(mentioned)} if mentioned else set()
        hits: list[SearchHit] = []
        for h in raw:
            why = ["words"]
            score = h.score
            if h.kind == "fact":
                fact = self.graph.fact_view(h.ref)
                if fact is None:
                    continue
                if not fact.current:
                    if not include_history:
                        continue
                    score *= STALE_FACTOR
                    why.append("history (not current)")
                else:
                    why.append("current fact")
            linked = near & set(h.entities)
            if linked:
                score *= GRAPH_BOOST
                why.append("near " + ", ".join(sorted(linked)[:3]))
            hits.append(
                SearchHit(
                    kind=h.kind,
                    id=h.ref,
                    title=h.title,
                    snippet=h.snippet,
                    score=round(score, 4),
                    time=iso(h.at),
                    why=why,
                )
            )
        hits.sort(key=lambda x: -x.score)
        return hits[:limit]

    def _pack_item(self, h: SearchHit) -> tuple[str, dict[str, Any]]:
        if h.kind == "fact":
            return "facts", {"fact": h.title, "id": h.id, "since": h.time}
        if h.kind == "note":
            return "learnings", {"note": h.id, "title": h.title, "excerpt": h.snippet}
        ep = self.episodes.episode(h.id)
        return "conversations", {"when": h.time, "excerpt": (ep or {}).get("text", h.snippet)[:600]}

    def recall(self, topic: str, budget_tokens: int = 2000) -> dict[str, Any]:
        """Current facts, learnings and conversation excerpts about ``topic`` within a budget
        (tokens ≈ characters / 4)."""
        if budget_tokens < 100 or budget_tokens > 20000:
            raise InvalidInput("budget_tokens must be 100..20000", field="budget_tokens")
        budget = budget_tokens * 4
        pack: dict[str, list[dict[str, Any]]] = {"facts": [], "learnings": [], "conversations": []}
        used = 0
        # Round-robin over the kinds, best first within each, so no kind crowds out the others.
        queues = [self.search(topic, kinds=[kind], limit=15) for kind in KINDS]
        while any(queues):
            for queue in queues:
                if not queue:
                    continue
                h = queue.pop(0)
                key, item = self._pack_item(h)
                cost = len(str(item))
                if used + cost <= budget:
                    pack[key].append(item)
                    used += cost
        return {"topic": topic, "tokens": used // 4, "budget_tokens": budget_tokens, **pack}


def _ts(text: str) -> float:
    from pai_membrane.timeparse import parse_time

    return parse_time(text, field="time")
