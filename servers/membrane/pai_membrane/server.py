"""The MemBrane MCP server: tool declarations only.

The fact-graph tools are declared here and call :class:`pai_core.memory.graph.service.GraphService`
(the shared memory every PAI server writes to); the vault, search, recall and conversation tools
are declared in :mod:`pai_membrane.tools_notes` (``register_note_tools``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated, Any, Literal

from mcp.server import MCPServer
from pydantic import Field

from pai_core.annotations import READ_ONLY, tool_annotations
from pai_core.app import add_health_tool, create_server, tool
from pai_core.memory.graph.views import (
    BatchResult,
    ConflictView,
    EntityView,
    FactIn,
    FactPage,
    FactView,
    MergeResult,
    PredicateView,
    TimelineView,
    TraverseView,
    WriteResult,
)
from pai_membrane import __version__
from pai_membrane.memory import MembraneMemory
from pai_membrane.settings import MembraneSettings
from pai_membrane.tools_notes import register_note_tools

if TYPE_CHECKING:  # the graph layer is imported on first use (memory.graph), not at start-up
    from pai_core.memory.graph.service import GraphService

__all__ = ["build_server"]

INSTRUCTIONS = """MemBrane is long-term memory across sessions: a bi-temporal graph of facts.
Record durable facts with remember_fact (subject PREDICATE object), e.g. 'MemBrane RUNS_ON
inference01'. Writes detect conflicts (a single-valued predicate with a different object,
mutually exclusive predicates) and report them with what was done. Read with get_entity,
query_facts, traverse; ask 'what were we working on last week?' with timeline(since='last week').
Times accept ISO 8601 or relative forms ('yesterday', '7d', '2 hours ago')."""

WRITE = tool_annotations(read_only=False, destructive=False, idempotent=True)
PolicyArg = Annotated[
    Literal["supersede", "reject", "flag"],
    Field(
        description="On conflict: supersede (close the old fact's validity; default), reject "
        "(write nothing) or flag (keep both and open a conflict)."
    ),
]
AsOf = Annotated[
    str | None,
    Field(
        description="World time to look at (default now), ISO 8601 or relative like 'yesterday'."
    ),
]
KnownAt = Annotated[
    str | None,
    Field(
        description="Belief time: only facts recorded by then and not yet retracted then "
        "(default: everything not retracted now)."
    ),
]


def _probe(settings: MembraneSettings, memory: MembraneMemory) -> dict[str, Any]:
    db = settings.memory.db_file
    details: dict[str, Any] = {
        "db_exists": db.exists(),
        "vault": str(settings.memory.vault_dir),
        "vault_watcher": memory.watcher_state,
        "indexer": memory.indexer.state,
        "search": "hybrid (BM25 + vectors) + graph proximity"
        if memory.embedder
        else "full-text (BM25) + graph proximity",
    }
    if memory.embedder is not None:
        details["embedding_model"] = memory.embedder.model_name
        details["embedding_engines"] = memory.embedder.engines()
    problems = []
    if memory.embedder is None:
        problems.append(
            "embeddings not installed: search is full text only "
            "(pip install 'pai-membrane[embeddings]')"
        )
    if memory.watcher_state.startswith("stopped"):
        problems.append(
            f"vault watcher {memory.watcher_state}: edits made in the vault are picked up only "
            "by sync_vault until the server restarts"
        )
    if db.exists():
        details.update(memory.graph.stats())
        details["episodes"] = memory.episodes.count()
        details["documents_waiting_for_vectors"] = memory.index.waiting_for_vectors()
        details["learnings_waiting_for_part_vectors"] = memory.search.parts_waiting()
        for p in memory.ready_vault().problems():
            problems.append(f"{p['path']} line {p['line']}: {p['message']}")
    return {
        "backend": f"sqlite:{db}",
        "configured": True,
        "details": details,
        "problems": problems[:20],
        "status": "degraded" if problems else "ok",
    }


def build_server(settings: MembraneSettings) -> MCPServer[Any]:
    """Compose the server from its settings (the composition root calls this)."""
    memory = MembraneMemory(settings)  # opens nothing until first use: start-up stays fast

    @asynccontextmanager
    async def lifespan(_server: Any) -> AsyncIterator[dict[str, Any]]:
        try:
            yield {}
        finally:
            memory.stop()  # the vault watcher and the indexer start with their first use

    server = create_server(
        "membrane",
        version=__version__,
        instructions=INSTRUCTIONS,
        settings=settings,
        lifespan=lifespan,
    )

    def graph() -> GraphService:
        return memory.graph

    add_health_tool(
        server, version=__version__, settings=settings, probe=lambda: _probe(settings, memory)
    )
    register_note_tools(server, memory)

    @tool(server, WRITE)
    def remember_fact(
        fact: Annotated[FactIn, Field(description="The fact to record.")],
        policy: PolicyArg = "supersede",
    ) -> WriteResult:
        """Record one fact. Identical current facts are not duplicated (status 'unchanged').

        Conflicts are reported with the existing fact, the new one, the rule and the action taken.
        Nothing is ever deleted: a superseded fact keeps its history.
        """
        result = graph().remember(fact, policy)
        memory.after_write()
        return result

    @tool(server, WRITE)
    def remember_facts(
        facts: Annotated[list[FactIn], Field(description="Facts to record together (max 1000).")],
        policy: PolicyArg = "supersede",
    ) -> BatchResult:
        """Record several facts in one transaction: all are written or none (e.g. under reject)."""
        batch = graph().remember_many(facts, policy)
        memory.after_write()
        return batch

    @tool(server, tool_annotations(read_only=False, destructive=True, idempotent=True))
    def retract_fact(
        fact_id: Annotated[str, Field(description="Id from a previous result.")],
        reason: Annotated[str, Field(description="Why it is withdrawn.")] = "",
    ) -> FactView:
        """Withdraw a fact that was wrong. It stays in history with retracted_at set."""
        return graph().retract(fact_id, reason)

    @tool(server, READ_ONLY)
    def get_entity(
        name: Annotated[str, Field(description="Entity name or alias (case-insensitive).")],
        as_of: AsOf = None,
        known_at: KnownAt = None,
        include_history: Annotated[bool, Field(description="Also superseded/retracted.")] = False,
        limit: Annotated[int, Field(ge=1, le=500)] = 100,
    ) -> EntityView:
        """An entity with its aliases and its facts in and out (true now, or as of a time)."""
        return graph().get_entity(
            name, as_of=as_of, include_history=include_history, limit=limit, known_at=known_at
        )

    @tool(server, READ_ONLY)
    def query_facts(
        subject: Annotated[str | None, Field(description="Subject entity.")] = None,
        predicate: Annotated[str | None, Field(description="Predicate (aliases resolve).")] = None,
        object: Annotated[str | None, Field(description="Object entity.")] = None,
        value: Annotated[str | None, Field(description="Literal value.")] = None,
        as_of: AsOf = None,
        known_at: KnownAt = None,
        include_history: Annotated[bool, Field(description="Include past and retracted.")] = False,
        limit: Annotated[int, Field(ge=1, le=500)] = 50,
        offset: Annotated[int, Field(ge=0)] = 0,
    ) -> FactPage:
        """Facts matching any combination of subject, predicate, object, value (paginated)."""
        return graph().query(
            known_at=known_at,
            subject=subject,
            predicate=predicate,
            object=object,
            value=value,
            as_of=as_of,
            include_history=include_history,
            limit=limit,
            offset=offset,
        )

    @tool(server, READ_ONLY)
    def traverse(
        start: Annotated[str, Field(description="Entity to start from.")],
        depth: Annotated[int, Field(ge=1, le=4, description="Hops.")] = 2,
        predicates: Annotated[list[str] | None, Field(description="Only these predicates.")] = None,
        as_of: AsOf = None,
        known_at: KnownAt = None,
        limit: Annotated[int, Field(ge=1, le=1000, description="Max edges.")] = 100,
    ) -> TraverseView:
        """Entities and facts within k hops of an entity, in both directions."""
        return graph().traverse(
            start, depth=depth, predicates=predicates, as_of=as_of, limit=limit, known_at=known_at
        )

    @tool(server, READ_ONLY)
    def timeline(
        since: Annotated[str, Field(description="Start, e.g. 'last week', '7d', ISO 8601.")],
        until: Annotated[str | None, Field(description="End (default now).")] = None,
        limit: Annotated[int, Field(ge=1, le=5000, description="Max facts.")] = 100,
    ) -> TimelineView:
        """What was recorded, became true, ended or was retracted in a window, grouped by
        project (via PART_OF) or entity: 'what were we working on last week?'."""
        view = graph().timeline(since=since, until=until, limit=limit)
        return _with_episodes(view, memory)

    @tool(server, READ_ONLY)
    def list_conflicts(
        status: Annotated[
            Literal["open", "resolved"] | None, Field(description="Filter.")
        ] = "open",
        limit: Annotated[int, Field(ge=1, le=500)] = 50,
        offset: Annotated[int, Field(ge=0)] = 0,
    ) -> list[ConflictView]:
        """Conflicts kept by the 'flag' policy, with both facts."""
        return graph().list_conflicts(status, limit, offset)

    @tool(server, WRITE)
    def resolve_conflict(
        conflict_id: Annotated[str, Field(description="From list_conflicts.")],
        keep: Annotated[Literal["new", "existing", "both"], Field(description="Which fact wins.")],
        note: Annotated[str, Field(description="Why.")] = "",
    ) -> ConflictView:
        """Resolve an open conflict: keep the new fact (the old one is closed), the existing one
        (the new one is retracted), or both."""
        return graph().resolve_conflict(conflict_id, keep, note)

    @tool(server, WRITE)
    def define_predicate(
        name: Annotated[str, Field(description="Predicate name, e.g. SCHEDULED_ON.")],
        cardinality: Annotated[
            Literal["one", "many"],
            Field(
                description="one: a subject has at most one current object (a new one conflicts)."
            ),
        ] = "many",
        aliases: Annotated[list[str] | None, Field(description="Other names.")] = None,
        inverse: Annotated[str | None, Field(description="Name of the inverse relation.")] = None,
        exclusive_with: Annotated[
            list[str] | None,
            Field(description="Predicates that contradict this one for the same object."),
        ] = None,
        description: Annotated[str, Field(description="What it means.")] = "",
    ) -> PredicateView:
        """Declare or update a predicate's schema (cardinality, aliases, inverse, exclusions)."""
        return graph().define_predicate(
            name,
            cardinality,
            aliases=aliases,
            inverse=inverse,
            exclusive_with=exclusive_with,
            description=description,
        )

    @tool(server, READ_ONLY)
    def list_predicates() -> list[PredicateView]:
        """Every predicate with its schema (built-in and defined)."""
        return graph().list_predicates()

    @tool(server, WRITE)
    def add_alias(
        entity: Annotated[str, Field(description="Existing entity.")],
        alias: Annotated[str, Field(description="Another name for it.")],
    ) -> EntityView:
        """Make another name find this entity (e.g. 'Mem Brane' for 'MemBrane')."""
        return graph().add_alias(entity, alias)

    @tool(server, tool_annotations(read_only=False, destructive=True))
    def merge_entities(
        source: Annotated[str, Field(description="Entity to merge away.")],
        target: Annotated[str, Field(description="Entity to keep.")],
    ) -> MergeResult:
        """Merge two entities that are one thing: facts move to the target, the source's name
        becomes an alias, duplicates are retracted (kept in history)."""
        return graph().merge_entities(source, target)

    return server


def _with_episodes(view: TimelineView, memory: MembraneMemory) -> TimelineView:
    """Add conversation turns in the same window, grouped by project directory."""
    from pai_core.memory.graph.views import TimelineGroup
    from pai_core.memory.timeparse import iso, parse_time

    t0, t1 = parse_time(view.since, field="since"), parse_time(view.until, field="until")
    groups = {g.group: list(g.events) for g in view.groups}
    total = view.total_events
    for project, events in memory.episodes.timeline(t0, t1).items():
        for e in events:
            e["at"] = iso(e["at"])
        groups.setdefault(project, []).extend(events)
        total += len(events)
    ordered = sorted(groups.items(), key=lambda kv: -len(kv[1]))
    return view.model_copy(
        update={
            "groups": [
                TimelineGroup(group=g, events=sorted(ev, key=lambda e: e["at"] or ""))
                for g, ev in ordered
            ],
            "total_events": total,
        }
    )
