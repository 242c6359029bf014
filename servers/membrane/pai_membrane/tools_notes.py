"""MCP tools of MemBrane's file layer, search and conversation memory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from mcp.server import MCPServer
from pydantic import BaseModel, Field

from pai_core.annotations import READ_ONLY, tool_annotations
from pai_core.app import tool
from pai_core.memory.episodes.views import IngestReport
from pai_core.memory.vault.views import NoteInfo, SyncReport
from pai_membrane.memory import MembraneMemory
from pai_membrane.search.views import SearchHit
from pai_membrane.settings import TRANSCRIPT_ROOTS

__all__ = ["register_note_tools"]

WRITE = tool_annotations(read_only=False, idempotent=False)


class NoteText(BaseModel):
    path: str
    title: str
    hash: str
    frontmatter: dict[str, Any]
    body: str
    links: list[str]
    error: str | None = None


class NoteList(BaseModel):
    notes: list[NoteInfo]


class SearchOut(BaseModel):
    query: str
    hits: list[SearchHit]
    mode: str = Field(description="What ranked the hits.")


def _t(value: str | None, field: str) -> float | None:
    from pai_core.memory.timeparse import parse_time

    return parse_time(value, field=field) if value else None


def register_note_tools(server: MCPServer[Any], memory: MembraneMemory) -> None:
    @tool(server, WRITE)
    def write_learning(
        title: Annotated[str, Field(description="Short title of the learning.")],
        problem: Annotated[str, Field(description="What went wrong or was unclear.")],
        solution: Annotated[str, Field(description="What fixed it.")],
        takeaway: Annotated[str, Field(description="What to remember next time.")],
        tags: Annotated[list[str] | None, Field(description="Tags.")] = None,
        entities: Annotated[
            list[str] | None,
            Field(description="Entities it is about; they become [[links]] and MENTIONS facts."),
        ] = None,
        project: Annotated[
            str | None, Field(description="Project (files it under Projects).")
        ] = None,
        area: Annotated[str | None, Field(description="Area of responsibility.")] = None,
    ) -> NoteInfo:
        """Write a learning (Problem → Solution → Takeaway) as a Markdown note in the vault.
        If link_error is set, the note is written but its entity links are not in the graph."""
        info = memory.ready_vault().write_learning(
            title,
            problem,
            solution,
            takeaway,
            tags=tags,
            entities=entities,
            project=project,
            area=area,
        )
        return info

    @tool(server, WRITE)
    def write_note(
        path: Annotated[str, Field(description="Path in the vault, e.g. '3-Resources/nginx.md'.")],
        body: Annotated[str, Field(description="Markdown body.")],
        frontmatter: Annotated[
            dict[str, Any] | None, Field(description="YAML frontmatter.")
        ] = None,
        overwrite: Annotated[bool, Field(description="Replace an existing note.")] = False,
        expected_hash: Annotated[
            str | None,
            Field(
                description="With overwrite: the hash from "
                "read_note, so a newer edit is never lost."
            ),
        ] = None,
    ) -> NoteInfo:
        """Create a note (atomic write). Existing notes need overwrite plus the expected hash.
        If link_error is set, the note is written but its [[links]] are not in the graph."""
        info = memory.ready_vault().write_note(
            path, body, frontmatter=frontmatter, overwrite=overwrite, expected_hash=expected_hash
        )
        return info

    @tool(server, READ_ONLY)
    def read_note(path: Annotated[str, Field(description="Path in the vault.")]) -> NoteText:
        """Read a note: frontmatter, body, links and the content hash edits must quote."""
        return NoteText(**memory.ready_vault().read_note(path))

    @tool(server, WRITE)
    def edit_note(
        path: Annotated[str, Field(description="Path in the vault.")],
        expected_hash: Annotated[str, Field(description="Hash from read_note.")],
        mode: Annotated[Literal["append", "replace_section", "find_replace"], Field()],
        text: Annotated[str, Field(description="Text to append or put in place.")],
        section: Annotated[str | None, Field(description="Heading, for replace_section.")] = None,
        find: Annotated[str | None, Field(description="Exact text, for find_replace.")] = None,
    ) -> NoteInfo:
        """Edit a note guarded by its hash: if a person changed it since you read it, nothing
        is written and the error says to read it again. If link_error is set, the edit is
        written but the note's [[links]] are not in the graph."""
        info = memory.ready_vault().edit_note(
            path, expected_hash, mode, text, section=section, find=find
        )
        return info

    @tool(server, WRITE)
    def move_note(
        path: Annotated[str, Field(description="Path in the vault.")],
        to: Annotated[
            str,
            Field(
                description="New path, or projects/areas/resources/archives "
                "to move it to that PARA folder (e.g. archive a project)."
            ),
        ],
    ) -> NoteInfo:
        """Move or rename a note inside the vault."""
        return memory.ready_vault().move_note(path, to)

    @tool(server, READ_ONLY)
    def list_notes(
        area: Annotated[
            Literal["projects", "areas", "resources", "archives"] | None, Field()
        ] = None,
        tag: str | None = None,
        entity: str | None = None,
        since: Annotated[
            str | None, Field(description="Changed since (ISO or 'last week').")
        ] = None,
        limit: Annotated[int, Field(ge=1, le=500)] = 50,
        offset: Annotated[int, Field(ge=0)] = 0,
    ) -> NoteList:
        """Notes by PARA folder, tag, entity or time, newest first."""
        notes = memory.ready_vault().list_notes(
            area=area, tag=tag, entity=entity, since=_t(since, "since"), limit=limit, offset=offset
        )
        return NoteList(notes=notes)

    @tool(server, tool_annotations(read_only=False, idempotent=True))
    def sync_vault() -> SyncReport:
        """Pick up edits, renames and deletions made in the vault by people (by content hash)."""
        return memory.ready_vault().sync()

    @tool(server, READ_ONLY)
    def search(
        query: Annotated[str, Field(description="What you are looking for, in words.")],
        kinds: Annotated[list[Literal["facts", "notes", "episodes"]] | None, Field()] = None,
        since: Annotated[str | None, Field(description="Only from this time on.")] = None,
        until: Annotated[str | None, Field(description="Only up to this time.")] = None,
        area: Annotated[
            str | None, Field(description="PARA area of notes, or project of conversations.")
        ] = None,
        entity: Annotated[str | None, Field(description="Only what mentions this entity.")] = None,
        include_history: Annotated[bool, Field(description="Also superseded facts.")] = False,
        limit: Annotated[int, Field(ge=1, le=100)] = 10,
    ) -> SearchOut:
        """Search facts, notes and past conversations at once; current facts rank first and
        each hit says why it matched."""
        hits = memory.search.search(
            query,
            kinds=list(kinds) if kinds else None,
            since=_t(since, "since"),
            until=_t(until, "until"),
            area=area,
            entity=entity,
            include_history=include_history,
            limit=limit,
        )
        return SearchOut(
            query=query,
            hits=hits,
            mode=memory.search.mode,
        )

    @tool(server, READ_ONLY)
    def recall(
        topic: Annotated[str, Field(description="The task or topic at hand.")],
        budget_tokens: Annotated[int, Field(ge=100, le=20000)] = 2000,
    ) -> dict[str, Any]:
        """A context pack for the task: the most relevant current facts, learnings and
        conversation excerpts, within a token budget."""
        return memory.search.recall(topic, budget_tokens)

    @tool(server, tool_annotations(read_only=False, idempotent=True))
    def ingest_transcript(
        path: Annotated[
            str,
            Field(
                description="Absolute path of a Claude Code session transcript (.jsonl) under "
                "the configured transcript folders (default ~/.claude/projects)."
            ),
        ],
    ) -> IngestReport:
        """Import a Claude Code transcript as searchable episodes; re-ingesting adds only what
        is new. Corrupt lines are skipped and counted. Only transcripts under the configured
        folders are read (setting PAI_MEMBRANE_TRANSCRIPT_ROOTS)."""
        return memory.episodes.ingest(
            Path(path), roots=memory.server_settings.transcript_roots, setting=TRANSCRIPT_ROOTS
        )
