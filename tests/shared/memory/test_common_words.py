"""Full text leaves out words found in most documents: they weigh nothing in BM25 and cost
the most to evaluate. What is left must still find what the telling words point to."""

from __future__ import annotations

from pathlib import Path

from pai_core.memory.fulltext import SearchIndex


def _fill(index: SearchIndex, texts: list[str], start: int = 0) -> None:
    with index.write() as conn:
        for i, text in enumerate(texts, start):
            index.upsert(conn, "note", f"n{i}.md", f"note {i}", text, at=float(i))


def test_common_words_are_left_out_and_telling_words_kept(tmp_path: Path) -> None:
    index = SearchIndex(tmp_path / "m.db")
    # "deploy" is in 60 of 100 notes, "quokka" in one note that does not say "deploy"
    _fill(index, [f"deploy step {i}" for i in range(60)] + [f"other {i}" for i in range(39)])
    _fill(index, ["the quokka incident"], start=99)
    assert index.common_limit() == 50
    assert index.telling_words(["deploy", "quokka", "step"]) == ["quokka"]
    # every word: the common one no longer hides the note that has the telling one
    hits = index.search("deploy quokka", kinds=["note"], every_word=True)
    assert [h.ref for h in hits] == ["n99.md"]
    # any word: only the telling one decides what matches
    assert [h.ref for h in index.search("quokka deploy", kinds=["note"])] == ["n99.md"]
    # only common words: every word must match, so the answer is still selective
    only_common = index.search("deploy step", kinds=["note"], limit=100)
    assert len(only_common) == 60 and all("deploy" in h.snippet for h in only_common)
    assert index.search("deploy step", kinds=["note"], every_word=True) == []


def test_counts_follow_the_index_as_it_grows(tmp_path: Path) -> None:
    index = SearchIndex(tmp_path / "m.db")
    _fill(index, ["rollout canary"] * 6 + ["misc"] * 4)
    assert index.telling_words(["rollout"]) == []  # 6 of 10 notes
    _fill(index, [f"unrelated {i}" for i in range(100)], start=10)
    assert index.size() == 110
    assert index.telling_words(["rollout"]) == ["rollout"]  # 6 of 110 notes
    hits = index.search("rollout misc", kinds=["note"], limit=20)
    assert {h.ref for h in hits} == {f"n{i}.md" for i in range(10)}


def test_a_small_index_keeps_words_that_are_merely_frequent(tmp_path: Path) -> None:
    index = SearchIndex(tmp_path / "m.db")
    _fill(index, ["postgres vacuum"] * 40 + ["postgres replica"] * 60 + ["nginx"] * 150)
    # 100 of 250 documents: far above 5%, but below the floor and below half
    assert index.common_limit() == 125
    assert index.telling_words(["postgres", "vacuum"]) == ["postgres", "vacuum"]
    hits = index.search("postgres vacuum", kinds=["note"], limit=50)
    assert len(hits) == 50 and all("vacuum" in h.snippet for h in hits[:40])
