"""Tests write facts as dict literals; the graph takes typed :class:`FactIn` models.

``model_construct`` skips pydantic's own checks, so the tests reach the service's checks (which
guard callers that build models the same way) and see the field each error names."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pai_core.memory.graph.views import FactIn


def fact_in(item: Mapping[str, Any]) -> FactIn:
    return FactIn.model_construct(**dict(item))


def facts_in(items: Iterable[Mapping[str, Any]]) -> list[FactIn]:
    return [fact_in(item) for item in items]
