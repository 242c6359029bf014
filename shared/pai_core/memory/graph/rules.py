"""The conflict rules of the fact graph, as pure functions of facts (no store, no clock).

Given a new fact, the predicate's schema and the current facts of the same subject under the
same or an exclusive predicate whose validity overlaps the new one's:

- :func:`duplicate_of` — an identical open fact that already holds: the write is a no-op.
- :func:`clashes` — each existing fact the new one contradicts, with the rule that fired:
  ``cardinality-one`` (a single-valued predicate with another object) or ``mutual-exclusion``
  (an exclusive predicate with the same object).
- :func:`resolve` — what a policy does about them: ``reject`` writes nothing; ``flag`` keeps
  both and opens a conflict per clash; ``supersede`` closes an older fact's validity where the
  new one starts, and bounds a new fact that is older than what it clashes with (a backfill).

:class:`~pai_core.memory.graph.service.GraphService` runs these inside one write transaction
and applies the outcome; tests call them directly.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from pai_core.memory.graph.model import Fact, PredicateDef

__all__ = [
    "POLICIES",
    "Action",
    "Clash",
    "Outcome",
    "Policy",
    "Rule",
    "Step",
    "clashes",
    "duplicate_of",
    "resolve",
]

Policy = Literal["supersede", "reject", "flag"]
Rule = Literal["cardinality-one", "mutual-exclusion"]
Action = Literal["superseded-existing", "bounded-new", "rejected", "flagged"]
POLICIES: tuple[Policy, ...] = ("supersede", "reject", "flag")


@dataclass(frozen=True, slots=True)
class Clash:
    existing: Fact
    rule: Rule


@dataclass(frozen=True, slots=True)
class Step:
    """One clash and what the policy does about it (``closed`` is the existing fact after)."""

    clash: Clash
    action: Action
    closed: Fact | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """The fact to write (possibly bounded), or None when rejected, and a step per clash."""

    fact: Fact | None
    steps: tuple[Step, ...]


def duplicate_of(new: Fact, existing: list[Fact]) -> Fact | None:
    """An open fact saying the same thing since no later than ``new``, if there is one."""
    if new.valid_to is not None:
        return None
    for f in existing:
        if (
            f.predicate == new.predicate
            and f.object_key() == new.object_key()
            and f.valid_from <= new.valid_from
            and f.valid_to is None
        ):
            return f
    return None


def clashes(new: Fact, pred: PredicateDef, existing: list[Fact]) -> list[Clash]:
    """The existing facts ``new`` contradicts, each with the rule that fired."""
    found: list[Clash] = []
    for f in existing:
        if f.predicate == new.predicate:
            if pred.cardinality == "one" and f.object_key() != new.object_key():
                found.append(Clash(f, "cardinality-one"))
        elif f.object_key() == new.object_key():
            found.append(Clash(f, "mutual-exclusion"))
    return found


def resolve(new: Fact, found: list[Clash], policy: Policy) -> Outcome:
    """What ``policy`` does with ``new`` and the facts it clashes with."""
    if found and policy == "reject":
        return Outcome(None, tuple(Step(c, "rejected") for c in found))
    steps: list[Step] = []
    for c in found:
        old = c.existing
        if policy == "flag":
            steps.append(Step(c, "flagged"))
        elif old.valid_from <= new.valid_from:
            closed = replace(old, valid_to=new.valid_from, superseded_by=new.id)
            steps.append(Step(c, "superseded-existing", closed))
        else:  # the new fact is older: it held until the existing one began
            bound = old.valid_from if new.valid_to is None else min(new.valid_to, old.valid_from)
            new = replace(new, valid_to=bound)
            steps.append(Step(c, "bounded-new"))
    return Outcome(new, tuple(steps))
