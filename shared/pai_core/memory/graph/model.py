"""Values of the fact graph and the rules that normalise names and predicates.

- Entity names are matched by a *key*: Unicode NFKC, case-folded, whitespace runs collapsed.
  ``MemBrane`` and ``membrane`` are one entity; ``Mem Brane`` becomes the same entity only when
  declared an alias.
- Predicates are upper snake case identifiers: ``runs on``, ``runsOn`` and ``runs-on`` are all
  ``RUNS_ON``; anything that is not an identifier afterwards is refused.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Literal

from pai_core.errors import InvalidInput

__all__ = [
    "MAX_NAME",
    "MAX_VALUE",
    "Conflict",
    "Entity",
    "Fact",
    "PredicateDef",
    "Probe",
    "clean_text",
    "entity_key",
    "normalise_predicate",
]

MAX_NAME = 200
MAX_VALUE = 2000
Cardinality = Literal["one", "many"]
_CTRL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_PREDICATE = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")


def clean_text(
    value: str, *, field: str, max_len: int = MAX_NAME, allow_newlines: bool = False
) -> str:
    """Stripped text, refused when empty, oversized or carrying control characters."""
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be text", field=field)
    text = unicodedata.normalize("NFKC", value).strip()
    if not text:
        raise InvalidInput(f"{field} is empty", field=field)
    if len(text) > max_len:
        raise InvalidInput(f"{field} is longer than {max_len} characters", field=field)
    bad = _CTRL.search(text) if allow_newlines else re.search(r"[\x00-\x1f\x7f]", text)
    if bad:
        raise InvalidInput(
            f"{field} contains a control character",
            field=field,
            hint="Remove control characters (tabs, newlines, NUL) and call again.",
        )
    return text


def entity_key(name: str, *, field: str = "name") -> str:
    """The lookup key of an entity name: NFKC, case-folded, single spaces."""
    return " ".join(clean_text(name, field=field).casefold().split())


def normalise_predicate(name: str, *, field: str = "predicate") -> str:
    """``runs on`` / ``runsOn`` / ``runs-on`` → ``RUNS_ON``; refuse non-identifiers."""
    text = clean_text(name, field=field, max_len=64)
    if text != text.upper():  # camelCase → CAMEL_CASE; text already upper case stays as it is
        text = _CAMEL.sub("_", text)
    text = re.sub(r"[\s\-./:]+", "_", text).upper().strip("_")
    if not _PREDICATE.match(text):
        raise InvalidInput(
            f"{field} {name!r} is not an identifier",
            field=field,
            hint="Use letters, digits and underscores, starting with a letter (e.g. RUNS_ON).",
        )
    return text


@dataclass(frozen=True, slots=True)
class Entity:
    id: str
    name: str
    key: str
    type: str
    created_at: float
    merged_into: str | None = None


@dataclass(frozen=True, slots=True)
class PredicateDef:
    name: str
    cardinality: Cardinality = "many"
    inverse: str | None = None
    description: str = ""
    aliases: tuple[str, ...] = ()
    exclusive_with: tuple[str, ...] = ()
    builtin: bool = False


@dataclass(frozen=True, slots=True)
class Fact:
    id: str
    subject_id: str
    predicate: str
    object_id: str | None
    value: str | None
    valid_from: float
    valid_to: float | None
    recorded_at: float
    retracted_at: float | None = None
    source: str = ""
    confidence: float = 1.0
    note: str = ""
    superseded_by: str | None = None

    def object_key(self) -> tuple[str | None, str | None]:
        return (self.object_id, self.value)

    def valid_at(self, t: float) -> bool:
        return self.valid_from <= t and (self.valid_to is None or t < self.valid_to)

    def overlaps(self, start: float, end: float | None) -> bool:
        return (self.valid_to is None or start < self.valid_to) and (
            end is None or self.valid_from < end
        )


@dataclass(frozen=True, slots=True)
class Conflict:
    id: str
    fact_id: str
    existing_fact_id: str
    rule: str
    status: Literal["open", "resolved"]
    created_at: float
    resolved_at: float | None = None
    resolution: str = ""
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Probe:
    """Facts a write's conflict rules need, read in bulk: those not retracted of ``subject_id``
    under ``predicate``, every one when ``any_object`` (a single-valued predicate), else only
    those with the same object entity or literal value."""

    subject_id: str
    predicate: str
    any_object: bool
    object_id: str | None = None
    value: str | None = None
