"""The vault: round trips through files, human edits picked up, lost-update guard, escapes."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from pai_core.errors import Conflict, InvalidInput, NotFound
from pai_core.memory.fulltext import SearchIndex
from pai_core.memory.vault.service import Vault

PARA = ["1-Projects", "2-Areas", "3-Resources", "4-Archives"]


class Links:
    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []

    def link_note(self, note: str, entities: list[str]) -> None:
        self.calls.append((note, entities))


@pytest.fixture
def links() -> Links:
    return Links()


@pytest.fixture
def vault(tmp_path: Path, links: Links) -> Vault:
    return Vault(tmp_path / "vault", PARA, SearchIndex(tmp_path / "m.db"), links)


def test_learning_round_trip_and_links(vault: Vault, links: Links) -> None:
    info = vault.write_learning(
        "Nginx reload drops connections",
        "Reloads dropped websockets on [[edge01]].",
        "Use graceful reload with worker_shutdown_timeout.",
        "Test reloads under load.",
        tags=["nginx"],
        entities=["Nginx"],
        project="PAI",
    )
    assert info.path == "1-Projects/PAI/Nginx-reload-drops-connections.md"
    text = (vault.root / info.path).read_text()
    assert text.startswith("---\n") and "type: learning" in text
    assert "## Problem" in text and "## Solution" in text and "## Takeaway" in text
    assert "[[Nginx]]" in text
    assert info.area == "projects" and set(info.entities) == {"Nginx", "edge01"}
    assert links.calls[-1] == (info.path, info.entities)
    note = vault.read_note(info.path)
    assert note["frontmatter"]["project"] == "PAI" and note["hash"] == info.hash
    hits = vault.index.search("websockets", kinds=["note"])
    assert [h.ref for h in hits] == [info.path]


def test_human_edit_is_picked_up_by_sync(vault: Vault) -> None:
    info = vault.write_note("3-Resources/dns.md", "# DNS\n\nTTL basics.")
    path = vault.root / info.path
    path.write_text(path.read_text().replace("TTL basics.", "Glue records explained."))
    (vault.root / "2-Areas" / "ops.md").write_text("# Ops\n\nOn-call rota.")
    report = vault.sync()
    assert (report.updated, report.added, report.removed) == (1, 1, 0)
    assert [h.ref for h in vault.index.search("glue", kinds=["note"])] == [info.path]
    assert vault.index.search("basics", kinds=["note"]) == []
    path.unlink()
    assert vault.sync().removed == 1
    assert vault.index.search("glue", kinds=["note"]) == []
    assert vault.sync().unchanged == 1


def test_lost_update_guard(vault: Vault) -> None:
    info = vault.write_note("3-Resources/x.md", "# X\n\n## Status\n\nold\n\n## Notes\n\nkeep")
    read = vault.read_note(info.path)
    edited = vault.edit_note(info.path, read["hash"], "replace_section", "new", section="Status")
    body = vault.read_note(info.path)["body"]
    assert "new" in body and "old" not in body and "keep" in body
    with pytest.raises(Conflict, match="changed since it was read"):
        vault.edit_note(info.path, read["hash"], "append", "lost?")  # stale hash
    # a person edits the file in between: our edit with the earlier hash is refused
    path = vault.root / info.path
    path.write_text(path.read_text() + "\nhuman line\n")
    with pytest.raises(Conflict):
        vault.edit_note(info.path, edited.hash, "append", "agent line")
    assert "human line" in path.read_text() and "agent line" not in path.read_text()
    with pytest.raises(Conflict, match="exists"):
        vault.write_note(info.path, "overwrite")
    fresh = vault.read_note(info.path)["hash"]
    vault.edit_note(info.path, fresh, "find_replace", "brand new", find="new")
    with pytest.raises(InvalidInput, match="exactly once"):
        vault.edit_note(
            info.path, vault.read_note(info.path)["hash"], "find_replace", "x", find="e"
        )
    with pytest.raises(NotFound):
        vault.edit_note(
            info.path, vault.read_note(info.path)["hash"], "replace_section", "x", section="Missing"
        )


@pytest.mark.parametrize(
    "bad", ["../outside.md", "/etc/passwd", "3-Resources/../../x.md", "", "a//b.md"]
)
def test_paths_cannot_escape(vault: Vault, bad: str) -> None:
    with pytest.raises(InvalidInput):
        vault.write_note(bad, "x")


def test_symlink_out_of_the_vault_is_refused(vault: Vault, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, vault.root / "3-Resources" / "link")
    with pytest.raises(InvalidInput, match="outside the vault"):
        vault.write_note("3-Resources/link/evil.md", "x")
    assert list(outside.iterdir()) == []


def test_malformed_frontmatter_is_reported_and_does_not_stop_sync(vault: Vault) -> None:
    (vault.root / "3-Resources" / "bad.md").write_text("---\ntitle: [unclosed\ntags: x\n---\nbody")
    (vault.root / "3-Resources" / "good.md").write_text("# Good\n\nfine text")
    report = vault.sync()
    assert report.added == 2
    [err] = report.errors
    assert err["path"] == "3-Resources/bad.md" and err["line"] and "YAML" in err["message"]
    assert vault.problems()[0]["path"] == "3-Resources/bad.md"
    assert vault.index.search("fine", kinds=["note"])


def test_move_to_archives_and_list(vault: Vault) -> None:
    info = vault.write_learning(
        "Old project wrap-up", "p", "s", "t", project="Legacy", tags=["retro"]
    )
    moved = vault.move_note(info.path, "archives")
    assert moved.path == "4-Archives/Legacy/Old-project-wrap-up.md" and moved.area == "archives"
    assert not (vault.root / info.path).exists()
    assert [n.path for n in vault.list_notes(area="archives")] == [moved.path]
    assert [n.path for n in vault.list_notes(tag="retro")] == [moved.path]
    assert vault.list_notes(area="projects") == []
    with pytest.raises(NotFound):
        vault.move_note(info.path, "archives")
    with pytest.raises(InvalidInput):
        vault.list_notes(area="nowhere")


def test_writes_are_atomic_and_leave_no_temp_files(vault: Vault) -> None:
    for i in range(5):
        vault.write_note(f"3-Resources/n{i}.md", "x" * 1000)
    assert not [p for p in vault.root.rglob("*") if p.name.startswith(".pai-")]
    with pytest.raises(InvalidInput, match="2 MiB"):
        vault.write_note("3-Resources/huge.md", "x" * (3 * 2**20))
    assert not (vault.root / "3-Resources" / "huge.md").exists()


def test_timestamps_move_on_edit(vault: Vault) -> None:
    info = vault.write_note("3-Resources/t.md", "# T\n\nbody")
    edited = vault.edit_note(info.path, info.hash, "append", "more")
    assert edited.hash != info.hash


# ------------------------------------------------------------ hardening: what the file system
# refuses, what a note cannot hold, and links that fail


def _files(vault: Vault) -> set[str]:
    return {p.relative_to(vault.root).as_posix() for p in vault.root.rglob("*")}


LONG_NAME = "a" * 300  # one name over the file system's 255 bytes
LONG_PATH = "a/" * 50_000 + "b"  # a 100 kB path


@pytest.mark.parametrize("rel", [LONG_NAME, "3-Resources/" + "é" * 130, LONG_PATH])
@pytest.mark.parametrize("op", ["write", "read", "edit", "move_from", "move_to"])
def test_paths_too_long_for_the_file_system_are_refused(vault: Vault, rel: str, op: str) -> None:
    note = vault.write_note("3-Resources/short.md", "# Short\n\nbody")
    before = _files(vault)
    calls: dict[str, Callable[[], object]] = {
        "write": lambda: vault.write_note(rel, "x"),
        "read": lambda: vault.read_note(rel),
        "edit": lambda: vault.edit_note(rel, note.hash, "append", "x"),
        "move_from": lambda: vault.move_note(rel, "archives"),
        "move_to": lambda: vault.move_note(note.path, rel),
    }
    with pytest.raises(
        InvalidInput, match="too long for the file system|longer than the file"
    ) as err:
        calls[op]()
    assert err.value.details["field"] == ("to" if op == "move_to" else "path")
    assert len(str(err.value)) < 400  # the path is not echoed back
    assert _files(vault) == before


def test_file_system_refusals_name_the_field_and_change_nothing(vault: Vault) -> None:
    note = vault.write_note("3-Resources/plain.md", "# Plain\n\nbody")
    (vault.root / "3-Resources" / "folder.md").mkdir()
    before = _files(vault)
    with pytest.raises(InvalidInput, match="cannot write the note") as err:
        vault.write_note("3-Resources/plain.md/inner.md", "x")  # a file where a folder should be
    assert err.value.details["field"] == "path"
    with pytest.raises(InvalidInput, match="cannot read the note"):
        vault.write_note("3-Resources/folder.md", "x", overwrite=True)  # a folder, not a note
    with pytest.raises(InvalidInput, match="cannot move the note there") as err:
        vault.move_note(note.path, "3-Resources/plain.md/inner.md")
    assert err.value.details["field"] == "to"
    assert _files(vault) == before


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("title", "Reload\x00drops"),
        ("title", "two\nlines"),
        ("title", "line\u2028separator"),
        ("problem", "escape \x1b[31m red"),
        ("solution", "del \x7f"),
        ("takeaway", "next line \x85 (C1)"),
        ("takeaway", "lone surrogate \ud800"),
        ("entities", "edge\x0001"),
        ("tags", "ops\x07"),
    ],
)
def test_control_characters_in_learnings_are_refused(vault: Vault, field: str, value: str) -> None:
    args = {"title": "T", "problem": "p", "solution": "s", "takeaway": "t"}
    extra: dict[str, list[str]] = {}
    if field in ("entities", "tags"):
        extra[field] = [value]
    else:
        args[field] = value
    before = _files(vault)
    with pytest.raises(InvalidInput, match="which a note cannot hold") as err:
        vault.write_learning(**args, **extra)  # type: ignore[arg-type]
    assert err.value.details["field"] == field and "U+" in str(err.value)
    assert _files(vault) == before


def test_control_characters_in_note_bodies_are_refused_but_tabs_and_newlines_stay(
    vault: Vault,
) -> None:
    for body in ("nul \x00 here", "bell \x07", "form feed \x0c", "surrogate \udfff"):
        with pytest.raises(InvalidInput, match="body contains"):
            vault.write_note("3-Resources/ctl.md", body)
    with pytest.raises(InvalidInput, match="frontmatter contains"):
        vault.write_note("3-Resources/ctl.md", "ok", frontmatter={"title": "a\x00b"})
    with pytest.raises(InvalidInput, match="frontmatter contains"):
        vault.write_note("3-Resources/ctl.md", "ok", frontmatter={"tags": [["deep\x1b"]]})
    assert not (vault.root / "3-Resources" / "ctl.md").exists()
    info = vault.write_note("3-Resources/ctl.md", "# Ctl\n\n\tindented\r\nwindows line\n")
    read = vault.read_note(info.path)
    assert "\tindented\nwindows line" in read["body"] and read["hash"] == info.hash
    assert b"\r" not in (vault.root / info.path).read_bytes()
    with pytest.raises(InvalidInput, match="text contains"):
        vault.edit_note(info.path, info.hash, "append", "more \x00")
    assert vault.read_note(info.path)["hash"] == info.hash


@pytest.mark.parametrize(
    "ch",
    [
        "\u202e",
        "\u200b",
        "\u200d",
        "\ufeff",
        "\u2066",
        "\u00ad",
        "\x00",
        "\x1f",
        "\u2028",
        "\ud800",
    ],
)
def test_invisible_characters_in_paths_are_refused(vault: Vault, ch: str) -> None:
    note = vault.write_note("3-Resources/seen.md", "x")
    before = _files(vault)
    with pytest.raises(InvalidInput, match="invisible or control character") as err:
        vault.write_note(f"3-Resources/inv{ch}oice.md", "x")
    assert f"U+{ord(ch):04X}" in str(err.value)
    with pytest.raises(InvalidInput) as err:
        vault.move_note(note.path, f"3-Resources/gpj{ch}.md")
    assert err.value.details["field"] == "to"
    assert _files(vault) == before


@pytest.mark.parametrize(
    "bad", [".", "./x.md", "3-Resources/.md", "3-Resources/.", ".obsidian/app.md", "3-Resources/.h"]
)
def test_hidden_and_nameless_paths_are_refused(vault: Vault, bad: str) -> None:
    note = vault.write_note("3-Resources/keep.md", "x")
    before = _files(vault)
    with pytest.raises(InvalidInput, match="hidden file or folder"):
        vault.write_note(bad, "x")
    with pytest.raises(InvalidInput, match="hidden file or folder") as err:
        vault.move_note(note.path, bad)
    assert err.value.details["field"] == "to"
    assert _files(vault) == before


def test_learning_titles_of_wide_characters_fit_a_file_name(vault: Vault) -> None:
    info = vault.write_learning("\U00020000" * 90, "p", "s", "t")  # 4 bytes each in UTF-8
    assert len(Path(info.path).name.encode()) <= 255
    assert vault.read_note(info.path)["title"] == "\U00020000" * 90


class FailingLinks:
    def link_note(self, note: str, entities: list[str]) -> None:
        raise InvalidInput("subject is longer than 200 characters", field="subject")


def test_a_note_whose_links_fail_says_so(tmp_path: Path) -> None:
    vault = Vault(tmp_path / "vault", PARA, SearchIndex(tmp_path / "m.db"), FailingLinks())
    info = vault.write_learning("Linked", "on [[edge01]]", "s", "t", entities=["Nginx"])
    assert (vault.root / info.path).is_file()  # the note itself is written
    assert info.link_error and "not recorded in the fact graph" in info.link_error
    assert "longer than 200 characters" in info.link_error
    assert "nothing was changed" not in info.link_error  # the note was
    edited = vault.edit_note(info.path, info.hash, "append", "See [[ns2]].")
    assert edited.link_error and "3 entities" in edited.link_error
    plain = vault.write_note("3-Resources/plain.md", "no links here")
    assert plain.link_error is None
    (vault.root / "3-Resources" / "by-hand.md").write_text("# By hand\n\nabout [[edge01]]")
    report = vault.sync()
    assert any(
        e["path"] == "3-Resources/by-hand.md" and "not recorded" in e["message"]
        for e in report.errors
    )


def test_links_the_graph_refuses_are_reported_not_swallowed(tmp_path: Path) -> None:
    from pai_core.memory.graph.service import GraphService
    from pai_core.memory.graph.sqlite_store import SqliteGraphStore
    from pai_core.memory.memory import GraphLinker

    graph = GraphService(SqliteGraphStore(tmp_path / "m.db"))
    vault = Vault(tmp_path / "vault", PARA, SearchIndex(tmp_path / "m.db"), GraphLinker(graph))
    ok = vault.write_note("3-Resources/dns.md", "about [[ns2]]")
    assert ok.link_error is None
    assert [f.object for f in graph.get_entity("note:3-Resources/dns.md").outgoing] == ["ns2"]
    # "note:<path>" is the subject: a path of 195 characters makes it too long for the graph
    long = vault.write_note("3-Resources/" + "n" * 190 + ".md", "about [[ns2]]")
    assert (vault.root / long.path).is_file()
    assert long.link_error and "subject is longer than 200 characters" in long.link_error
