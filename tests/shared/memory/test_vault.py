"""The vault: round trips through files, human edits picked up, lost-update guard, escapes."""

from __future__ import annotations

import os
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
