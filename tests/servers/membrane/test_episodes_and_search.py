"""Conversations as episodes, and one search over facts, notes and episodes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pai_core.errors import InvalidInput, NotFound
from pai_core.memory.episodes.ingest import EpisodeStore, turn_text
from pai_core.memory.fulltext import SearchIndex
from pai_core.memory.graph.service import GraphService
from pai_core.memory.graph.sqlite_store import SqliteGraphStore
from pai_core.memory.memory import GraphLinker
from pai_core.memory.timeparse import parse_time
from pai_core.memory.vault.service import Vault
from pai_membrane.search.service import MemorySearch
from tests.shared.memory.facts import fact_in

DATA = Path(__file__).parent / "data"


@pytest.fixture
def parts(tmp_path: Path) -> tuple[GraphService, Vault, EpisodeStore, MemorySearch]:
    db = tmp_path / "m.db"
    graph = GraphService(SqliteGraphStore(db))
    index = SearchIndex(db)
    vault = Vault(
        tmp_path / "vault",
        ["1-Projects", "2-Areas", "3-Resources", "4-Archives"],
        index,
        GraphLinker(graph),
    )
    episodes = EpisodeStore(index)
    return graph, vault, episodes, MemorySearch(index, graph, episodes)


def test_transcript_ingestion_is_idempotent_and_incremental(parts, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, _, episodes, _ = parts
    transcript = tmp_path / "s-42.jsonl"
    shutil.copy(DATA / "session.jsonl", transcript)
    first = episodes.ingest(transcript)
    assert (first.added, first.skipped_lines, first.session_id) == (4, 0, "s-42")
    assert first.pending_partial_line  # the truncated last line waits for more text
    again = episodes.ingest(transcript)
    assert again.added == 0 and again.total_episodes == 4
    # the session goes on: the broken line is completed wrongly, then a good turn follows
    with transcript.open("a") as fh:
        fh.write("oops\n")
        fh.write((DATA / "session-more.jsonl").read_text())
    later = episodes.ingest(transcript)
    assert later.added == 1 and later.skipped_lines == 1 and later.total_episodes == 5
    assert episodes.count() == 5
    tool_turn = episodes.episode("u2")
    assert tool_turn and "[tool Bash:" in tool_turn["text"]
    assert "secret chain of thought" not in tool_turn["text"]


def test_turn_text_shapes() -> None:
    assert turn_text("plain") == "plain"
    assert (
        turn_text(
            {"content": [{"type": "tool_result", "content": [{"type": "text", "text": "ok"}]}]}
        )
        == "[result: ok]"
    )
    assert turn_text({"content": None}) == ""


def test_bad_transcript_paths(parts, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, _, episodes, _ = parts
    with pytest.raises(NotFound):
        episodes.ingest(tmp_path / "missing.jsonl")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(InvalidInput):
        episodes.ingest(tmp_path / "x.txt")


def test_search_spans_kinds_and_prefers_current_facts(parts, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    graph, vault, episodes, search = parts
    graph.remember(
        fact_in(
            {
                "subject": "www",
                "predicate": "RUNS_ON",
                "object": "edge01",
                "valid_from": "2026-01-01",
            }
        )
    )
    graph.remember(fact_in({"subject": "www", "predicate": "RUNS_ON", "object": "edge02"}))
    vault.write_learning(
        "Secondary serves stale records",
        "The secondary kept old records.",
        "Add it to the primary's NOTIFY list.",
        "Always configure NOTIFY.",
        entities=["edge02"],
    )
    transcript = tmp_path / "s.jsonl"
    shutil.copy(DATA / "session.jsonl", transcript)
    episodes.ingest(transcript)

    kinds = {h.kind for h in search.search("secondary notify")}
    assert kinds == {"note", "episode"}
    conn = search.index.db.conn()
    writes = conn.total_changes
    assert search.search("www runs on", kinds=["facts"]) == []  # not indexed yet: reads only
    assert conn.total_changes == writes
    assert search.sync_facts() == 3  # both facts and the note's MENTIONS (counted, not indexed)
    assert search.sync_facts() == 0
    facts = search.search("www runs on", kinds=["facts"])
    assert [h.title for h in facts] == ["www RUNS_ON edge02"]
    assert "current fact" in facts[0].why
    history = search.search("www runs on", kinds=["facts"], include_history=True)
    assert [h.title for h in history] == ["www RUNS_ON edge02", "www RUNS_ON edge01"]
    assert "history (not current)" in history[1].why
    near = search.search("edge02 secondary", kinds=["notes"])
    assert near and any(w.startswith("near") for w in near[0].why)
    window = search.search(
        "secondary", kinds=["episodes"], since=parse_time("2026-11-20T09:00:30Z", field="t")
    )
    assert [h.id for h in window] == ["u4"]
    assert search.search("secondary", kinds=["episodes"], area="pai")
    assert search.search("secondary", kinds=["notes"], entity="edge02")
    with pytest.raises(InvalidInput):
        search.search("   ")
    with pytest.raises(InvalidInput):
        search.search("x", kinds=["tweets"])


def test_recall_stays_within_budget(parts, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    graph, vault, episodes, search = parts
    for i in range(30):
        vault.write_note(f"3-Resources/dns-{i}.md", f"# DNS note {i}\n\n" + "secondary zone " * 60)
    graph.remember(
        fact_in({"subject": "ns2", "predicate": "HAS_STATUS", "value": "secondary zone ok"})
    )
    search.sync_facts()
    pack = search.recall("secondary zone", budget_tokens=400)
    assert pack["tokens"] <= 400
    assert pack["facts"] and pack["learnings"]
    big = search.recall("secondary zone", budget_tokens=5000)
    assert len(big["learnings"]) > len(pack["learnings"])


def test_notes_mention_entities_in_the_graph(parts) -> None:  # type: ignore[no-untyped-def]
    graph, vault, _, _ = parts
    info = vault.write_learning(
        "Disk full on db01",
        "Logs filled [[db01]].",
        "Rotate logs.",
        "Alert at 80%.",
        entities=["PostgreSQL"],
    )
    mentions = graph.query(subject=f"note:{info.path}", predicate="MENTIONS").facts
    assert {f.object for f in mentions} == {"PostgreSQL", "db01"}
    assert any(f.subject == f"note:{info.path}" for f in graph.get_entity("db01").incoming)


def test_entities_named_in_a_query_are_found_by_their_words(parts) -> None:  # type: ignore[no-untyped-def]
    graph, _, _, search = parts
    for subject, obj in [
        ("host01", "rack 7"),
        ("node.js", "Mem Brane"),
        ("web", "host010"),
    ]:
        graph.remember(fact_in({"subject": subject, "predicate": "RUNS_ON", "object": obj}))
    found = search._query_entities
    assert found("is host01.example.com up?") == ["host01"]
    assert found("what runs on Rack 7?") == ["rack 7"]
    assert set(found("does mem brane use node.js?")) == {"Mem Brane", "node.js"}
    assert found("host0101 and host010") == ["host010"]  # whole names only
    assert found("webhooks") == []
