"""The predicates every memory starts with, and how a predicate's schema is shown.

A predicate has a cardinality (``one``: a subject has at most one current object, so a new one
conflicts; ``many``), aliases (``HOSTED_ON`` → ``RUNS_ON``), an optional inverse name and
predicates it excludes (symmetric: ``ENABLED`` ↔ ``DISABLED``). Servers that record their changes
declare their own (``HAS_A``, ``FIXES`` …) through :mod:`pai_core.memory.record`.
"""

from __future__ import annotations

from pai_core.memory.graph.model import PredicateDef
from pai_core.memory.graph.views import PredicateView

__all__ = ["BUILTIN_PREDICATES", "predicate_view"]

BUILTIN_PREDICATES = (
    PredicateDef(
        "RUNS_ON",
        "one",
        None,
        "Where a service or workload runs.",
        ("HOSTED_ON", "DEPLOYED_ON", "RUNS_AT"),
        builtin=True,
    ),
    PredicateDef("HAS_VERSION", "one", None, "The version in use.", ("VERSION",), builtin=True),
    PredicateDef("HAS_STATUS", "one", None, "Current status.", ("STATUS",), builtin=True),
    PredicateDef("OWNED_BY", "one", None, "Who owns it.", ("OWNER",), builtin=True),
    PredicateDef("LOCATED_IN", "one", None, "Where it is.", (), builtin=True),
    PredicateDef(
        "PART_OF",
        "one",
        "HAS_PART",
        "The project or system it belongs to.",
        ("BELONGS_TO",),
        builtin=True,
    ),
    PredicateDef(
        "USES", "many", None, "Tools, libraries, services used.", ("USING",), builtin=True
    ),
    PredicateDef("DEPENDS_ON", "many", None, "Dependencies.", ("REQUIRES",), builtin=True),
    PredicateDef(
        "WORKS_ON", "many", None, "People or agents working on a project.", (), builtin=True
    ),
    PredicateDef(
        "MENTIONS", "many", None, "A note or episode mentions an entity.", (), builtin=True
    ),
    PredicateDef("RELATES_TO", "many", None, "A loose relation.", (), builtin=True),
    PredicateDef(
        "ENABLED", "many", None, "A feature or rule is enabled.", (), ("DISABLED",), builtin=True
    ),
    PredicateDef(
        "DISABLED", "many", None, "A feature or rule is disabled.", (), ("ENABLED",), builtin=True
    ),
)


def predicate_view(p: PredicateDef) -> PredicateView:
    return PredicateView(
        name=p.name,
        cardinality=p.cardinality,
        inverse=p.inverse,
        aliases=list(p.aliases),
        exclusive_with=list(p.exclusive_with),
        description=p.description,
        builtin=p.builtin,
    )
