"""One search over facts, notes and episodes; and recall, a context pack within a budget.

Ranking is full-text BM25 (FTS5) adjusted by what the memory knows: current facts rank above
superseded or retracted ones (which are hidden unless history is asked for), and documents that
mention an entity named in the query, or one hop from it in the graph, are lifted (graph
proximity). Search only reads: facts reach the full-text index and documents their vectors
through :class:`pai_membrane.search.indexer.Indexer`, in the background (and right after
MemBrane's own writes), and a document still waiting for its vector is ranked by its words and
says so in ``why``.

A document made of sections (a learning: title, problem, solution, takeaway) also gets a vector
per part; the nearest documents by their whole-text vector are reranked by the mean of the
whole-text similarity and the parts' mean similarity, so a query that paraphrases one part (the
problem, the lesson) finds the note whose part says it rather than a near-miss on the same topic.
The parts cost about as much to embed as the whole text again, so they are embedded after every
waiting document has its whole-text vector: a new learning is searchable by meaning at the
model's own rate, and is reranked by its parts once they are in.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, Literal

from pai_core.errors import InvalidInput
from pai_core.memory.episodes.ingest import EpisodeStore
from pai_core.memory.fulltext import Hit, SearchIndex
from pai_core.memory.graph.service import GraphService
from pai_core.memory.timeparse import iso
from pai_membrane.search.blas import single_blas_thread
from pai_membrane.search.indexer import SearchActivity
from pai_membrane.search.vector_store import NumpyVectorStore, text_hash
from pai_membrane.search.vectors import Embedder
from pai_membrane.search.views import SearchHit

__all__ = ["KINDS", "MemorySearch", "SearchHit", "doc_parts"]

KINDS = ("facts", "notes", "episodes")
_KIND = {"facts": "fact", "notes": "note", "episodes": "episode"}
GRAPH_BOOST = 1.5
STALE_FACTOR = 0.3
# How much of the normalised BM25 score is added to the cosine similarity. Chosen by measurement
# on the labelled set (tests/servers/membrane/data/retrieval_set.json; numbers in
# benchmarks/results/membrane_search.md): equal-weight RRF scored MRR 0.64 there against 0.90
# for vectors alone, because paraphrased queries share few words with their answers. A share of
# 0.1 costs little on paraphrases (MRR 0.87) and puts exact-term matches first.
TEXT_SHARE = 0.1
# Parts: a document with at least two "## " sections is embedded whole and also by part (its
# title and each section's text, up to MAX_PARTS). Measured on the near-miss labelled set
# (tests/servers/membrane/data/hard_set.json; benchmarks/results/membrane_search.md), reranking
# by (whole + mean of the parts) / 2 raised MRR from 0.82 (whole text alone) to 0.84 and
# recall@5 from 0.945 to 0.964, and on the older set from 0.90 to 0.93; the best part alone,
# title+section chunks, or more weight on BM25 (OR-ed words) all scored lower there.
# The whole-text vector is the whole text's own pass, not derived from the parts (which would
# save it: the parts hold ~0.8x its tokens). Derived, the near-miss set scored recall@5 / MRR
# 0.927 / 0.824 with this rerank (the parts' tokens pooled together; 0.909 / 0.807 alone), the
# mean of the normalised parts 0.927 / 0.803, the best mix tried (derived + mean part + best
# part) 0.945 / 0.837, and the parts' tokens run through their last 1-6 layers with attention
# across parts at most 0.945 / 0.828: the whole text's vector (title twice, the headings,
# attention across sections) is only ~0.9 cosine from any of them, and recall@5 fell below 0.95.
# Nor is any document embedded by the model dynamically quantised to int8 (its Linear layers):
# ~1.5x faster than float32 on the learnings on 2 loaded cores, so whole + parts still cost
# ~0.7x the float32 model on the whole texts, and the near-miss set fell to recall@5 / MRR
# 0.964 / 0.790 (per-tensor weights), 0.945 / 0.808 (per-channel), 0.964 / 0.798 (per-channel,
# feed-forward layers only), all below float32 vectors of the whole text alone (0.945 / 0.820).
MAX_PARTS = 8
MIN_SECTIONS = 2
EMBED_BATCH = 64
Mode = Literal["hybrid", "text", "vector"]


class MemorySearch:
    def __init__(
        self,
        index: SearchIndex,
        graph: GraphService,
        episodes: EpisodeStore,
        embedder: Embedder | None = None,
        vectors: NumpyVectorStore | None = None,
        activity: SearchActivity | None = None,
    ) -> None:
        self.index = index
        self.graph = graph
        self.episodes = episodes
        self.embedder = embedder
        self.vectors = vectors or NumpyVectorStore()
        self.activity = activity or SearchActivity()  # background embedding waits for searches
        self._names: tuple[float, dict[str, list[tuple[str, str]]]] = (0.0, {})
        self._query_vectors: dict[str, Any] = {}

    @property
    def mode(self) -> str:
        return (
            "hybrid (BM25 + vectors, cosine + weighted BM25) + graph proximity"
            if self.embedder
            else "full-text (BM25) + graph proximity; embeddings not installed"
        )

    def embed_pending(self, max_docs: int | None = None, *, parts: bool = True) -> int:
        """Embed documents that have no vector yet (all of them, or about ``max_docs``), in
        batches, reusing vectors of identical text (cached by content hash); then, once every
        document has its whole-text vector, the parts of those made of sections (unless
        ``parts`` is false). Returns how many documents got vectors."""
        if self.embedder is None:
            return 0
        done: set[int] = set()
        batch = max_docs or EMBED_BATCH * 4
        while max_docs is None or len(done) < max_docs:
            got = self._embed_wholes(batch) or (self._embed_parts(batch) if parts else [])
            if not got:
                break
            done.update(got)
        return len(done)

    def _embed_wholes(self, batch: int) -> list[int]:
        """One batch of documents waiting for their whole-text vector. A document made of
        sections gets its part vectors at once where identical text already has them, and is
        listed for them otherwise: a document is searchable by meaning as soon as its whole
        text is embedded, and its parts (most of the cost again) follow."""
        import numpy as np

        conn = self.index.db.conn()
        todo = self.vectors.missing(conn, batch)
        if not todo:
            return []
        assert self.embedder is not None
        hashes = [text_hash(text) for _, text in todo]
        cached = self.vectors.cached(conn, hashes)
        sectioned = [(d, h) for (d, text), h in zip(todo, hashes, strict=True) if doc_parts(text)]
        cached_parts = self.vectors.cached_parts(conn, [h for _, h in sectioned])
        texts = [text[:2000] for (_, text), h in zip(todo, hashes, strict=True) if h not in cached]
        fresh = iter(self.embedder.embed(texts) if texts else [])
        items = [
            (d, h, np.frombuffer(cached[h], dtype=np.float32) if h in cached else next(fresh))
            for (d, _), h in zip(todo, hashes, strict=True)
        ]
        reused = [
            (d, h, np.frombuffer(cached_parts[h], dtype=np.float32))
            for d, h in sectioned
            if h in cached_parts
        ]
        with self.index.write() as wconn:
            self.vectors.add(wconn, items)
            self.vectors.want_parts(wconn, [d for d, h in sectioned if h not in cached_parts])
            if reused:
                self.vectors.add_parts(wconn, reused)
        return [d for d, _, _ in items]

    def _embed_parts(self, batch: int) -> list[int]:
        """One batch of documents whose whole-text vector is in and whose parts are not."""
        conn = self.index.db.conn()
        todo, stale = self.vectors.parts_missing(conn, batch)
        while stale and not todo:  # entries of documents gone or changed: drop, read on
            with self.index.write() as wconn:
                self.vectors.drop_part_pending(wconn, stale)
            todo, stale = self.vectors.parts_missing(conn, batch)
        if not todo:
            return []
        assert self.embedder is not None
        split = [doc_parts(text) for _, text, _ in todo]
        texts = [part for parts in split for part in parts]
        vecs = self.embedder.embed(texts) if texts else []
        items, start = [], 0
        for (doc_id, _, h), parts in zip(todo, split, strict=True):
            if parts:
                items.append((doc_id, h, vecs[start : start + len(parts)]))
                start += len(parts)
        with self.index.write() as wconn:
            self.vectors.add_parts(wconn, items)
            self.vectors.drop_part_pending(wconn, stale + [d for d, _, _ in todo])
        return [d for d, _, _ in todo]

    def parts_waiting(self) -> int:
        """Documents made of sections whose part vectors are still to be embedded."""
        return self.vectors.parts_waiting(self.index.db.conn())

    def _query_vector(self, query: str) -> Any:
        """The query's vector; the last few are kept (recall asks once per kind)."""
        assert self.embedder is not None
        vec = self._query_vectors.pop(query, None)
        if vec is None:
            vec = self.embedder.embed([query])[0]
            if len(self._query_vectors) >= 64:
                self._query_vectors.pop(next(iter(self._query_vectors)))
        self._query_vectors[query] = vec  # most recently used last
        return vec

    def sync_facts(self, batch: int = 5000) -> int:
        """Index facts written since the last sync (by any process); return how many."""
        done = 0
        while True:
            cursor = int(self.index.meta("facts_cursor", "0") or 0)
            views, newest = self.graph.facts_since(cursor, batch)
            if not views:
                return done
            with self.index.write() as conn:
                if int(self.index.meta("facts_cursor", "0") or 0) != cursor:
                    continue  # another process indexed them meanwhile
                for v in views:
                    if v.predicate == "MENTIONS" and v.subject.startswith("note:"):
                        continue  # a note's links: the note itself is indexed
                    obj = v.object or v.value or ""
                    title = f"{v.subject} {v.predicate} {obj}"
                    body = f"{title}. {v.note}".strip()
                    ents = [v.subject] + ([v.object] if v.object else [])
                    at = _ts(v.recorded_at)
                    self.index.upsert(conn, "fact", v.id, title, body, at=at, entities=ents)
                self.index.set_meta(conn, "facts_cursor", str(newest))
            done += len(views)

    def unindexed_facts(self) -> bool:
        """Whether facts were written that the full-text index does not hold yet."""
        cursor = int(self.index.meta("facts_cursor", "0") or 0)
        return bool(self.graph.facts_since(cursor, 1)[0])

    def _entity_index(self) -> dict[str, list[tuple[str, str]]]:
        """Entity names by the first word of their case-folded form (read again every 30 s),
        so a query is matched against the few names its words can start, not all of them
        (25k names took ~19 ms a query one by one)."""
        stamp, index = self._names
        if time.monotonic() - stamp > 30:
            index = {}
            for name in self.graph.names():
                folded = name.casefold()
                words = folded.split()
                if words:
                    index.setdefault(words[0], []).append((name, folded))
            self._names = (time.monotonic(), index)
        return index

    def _query_entities(self, query: str) -> list[str]:
        """Entities named in ``query``: a name standing after a space and before a space,
        '?' or '.' (so 'host01.example.com' names host01)."""
        low = f" {query.casefold()} "
        index = self._entity_index()
        found: dict[str, None] = {}
        for token in low.split():
            # the name's first word is the whole token or ends just before a '?' or '.'
            for key in {token} | {token[:i] for i, ch in enumerate(token) if ch in "?."}:
                for name, folded in index.get(key, ()):
                    if f" {folded} " in low or f" {folded}?" in low or f" {folded}." in low:
                        found[name] = None
        return list(found)

    def _ranked(
        self,
        query: str,
        kinds: list[str],
        since: float | None,
        until: float | None,
        area: str | None,
        entity: str | None,
        n: int,
        mode: Mode,
    ) -> list[Hit]:
        """Candidates ranked by text, by vectors, or fused; ``score`` is the fused score."""
        filters: dict[str, Any] = {
            "kinds": kinds,
            "since": since,
            "until": until,
            "area": area,
            "entity": entity,
        }
        if self.embedder is None or mode == "text":
            return self.index.search(query, limit=n, **filters)
        # Beside vectors, full text only has to lift documents holding every query word (an
        # exact name or option); the all-words query is selective, so it stays fast at scale.
        # It runs on another thread (its own connection; SQLite lets go of the GIL) while the
        # query is embedded and ranked by vectors: at 110k documents, hybrid search took
        # 39.3 / 45.9 ms p50 / p95 so against 41.9 / 52.7 ms in turn (load 1.6), and no
        # longer with other processes keeping both cores busy (benchmarks/
        # membrane_search_profile.py).
        text_job = (
            _text_worker().submit(self.index.search, query, limit=n, every_word=True, **filters)
            if mode == "hybrid"
            else None
        )
        qvec = self._query_vector(query)
        nearest = self.vectors.search(
            self.index.db.conn(), qvec, n * 3, kinds=kinds, since=since, until=until
        )
        ids = [doc_id for doc_id, _ in nearest]
        if area or entity:  # filters the vectors do not know: drop those documents, then rerank
            docs = self.index.docs(ids, **filters)
            nearest = self._by_parts(qvec, [(d, sim) for d, sim in nearest if d in docs])
        else:
            # Ranked within kinds and time already: rerank, then read only the documents kept
            # (a third of them; 1.6 ms at 110k documents for all), unless one is gone or no
            # longer passes (then as above; reranking keeps the order of the rest).
            nearest = self._by_parts(qvec, nearest)
            docs = self.index.docs([d for d, _ in nearest[:n]], **filters)
            if len(docs) < len(nearest[:n]):
                docs = self.index.docs(ids, **filters)
                nearest = [(d, sim) for d, sim in nearest if d in docs]
        text = text_job.result() if text_job is not None else []
        vec_hits = [replace(docs[d], score=sim) for d, sim in nearest[:n]]
        if mode == "vector":
            return vec_hits
        # Score fusion: cosine similarity plus a share of the normalised BM25 score. Measured
        # on the labelled set, this keeps what vectors find for paraphrases and still lifts an
        # exact-word match (a hostname, an option name) that vectors rank lower.
        top_text = max((h.score for h in text), default=0.0) or 1.0
        text_score = {h.doc_id: h.score / top_text for h in text}
        floor = min((h.score for h in vec_hits), default=0.0)
        by_id: dict[int, Hit] = {h.doc_id: h for h in vec_hits}
        by_id.update({h.doc_id: h for h in text})  # the text hit's snippet marks the words
        sim = {h.doc_id: h.score for h in vec_hits}
        fused = {d: sim.get(d, floor) + TEXT_SHARE * text_score.get(d, 0.0) for d in by_id}
        ordered = sorted(fused, key=lambda d: -fused[d])[:n]
        return [replace(by_id[d], score=fused[d]) for d in ordered]

    def _by_parts(self, qvec: Any, nearest: list[tuple[int, float]]) -> list[tuple[int, float]]:
        """Rerank the nearest documents: one with part vectors scores the mean of its whole-text
        similarity and its parts' mean similarity; the others keep their similarity."""
        parts = self.vectors.parts(self.index.db.conn(), [d for d, _ in nearest])
        if not parts:
            return nearest
        scored = [
            (d, (sim + float((parts[d] @ qvec).mean())) / 2 if d in parts else sim)
            for d, sim in nearest
        ]
        return sorted(scored, key=lambda x: -x[1])

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
        mode: Mode = "hybrid",
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
        if self.embedder is not None:
            # One BLAS thread for the query's forward pass and the product with every vector:
            # more wait on each other when other processes keep the cores busy (blas.py).
            single_blas_thread()
        with self.activity.running():
            return self._search(
                query, chosen, since, until, area, entity, include_history, limit, mode
            )

    def _search(
        self,
        query: str,
        chosen: list[str],
        since: float | None,
        until: float | None,
        area: str | None,
        entity: str | None,
        include_history: bool,
        limit: int,
        mode: Mode,
    ) -> list[SearchHit]:
        raw = self._ranked(
            query, [_KIND[k] for k in chosen], since, until, area, entity, limit * 4, mode
        )
        mentioned = self._query_entities(query)
        near = {n.casefold() for n in self.graph.neighbours(mentioned)} if mentioned else set()
        waiting = (
            self.vectors.pending(self.index.db.conn(), [h.doc_id for h in raw])
            if self.embedder and mode != "text"
            else set()
        )
        scored: list[tuple[float, Hit, list[str]]] = []
        for h in raw:
            why = [
                "matched"
                if mode == "hybrid" and self.embedder
                else ("meaning" if mode == "vector" else "words")
            ]
            if h.doc_id in waiting:
                why[0] = "words only (its vector is still being computed)"
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
            scored.append((round(score, 4), h, why))
        scored.sort(key=lambda x: -x[0])  # then only the hits returned are made (4x fewer)
        return [
            SearchHit(
                kind=h.kind,
                id=h.ref,
                title=h.title,
                snippet=h.snippet,
                score=score,
                time=iso(h.at),
                why=why,
            )
            for score, h, why in scored[:limit]
        ]

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


def doc_parts(text: str) -> list[str]:
    """The parts of an indexed document's text (its title line, then the body) to embed one by
    one: the title and each "## " section's text, when the body has at least MIN_SECTIONS
    sections; otherwise none (the document is embedded whole only)."""
    title, _, body = text.partition("\n")
    sections: list[list[str]] = []
    for line in body.splitlines():
        if line.startswith("## "):
            sections.append([])
        elif sections:
            sections[-1].append(line)
    texts = [" ".join(" ".join(lines).split()) for lines in sections]
    texts = [t[:2000] for t in texts if t]
    if len(texts) < MIN_SECTIONS:
        return []
    return ([title.strip()] if title.strip() else []) + texts[: MAX_PARTS - 1]


_text_pool: ThreadPoolExecutor | None = None
_text_pool_lock = threading.Lock()


def _text_worker() -> ThreadPoolExecutor:
    """The threads that run hybrid search's full-text query beside its vectors (a few, for
    searches at once; made on the first hybrid search)."""
    global _text_pool
    with _text_pool_lock:
        if _text_pool is None:
            _text_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="pai-search-text")
        return _text_pool


def _ts(text: str) -> float:
    from pai_core.memory.timeparse import parse_time

    return parse_time(text, field="time")
