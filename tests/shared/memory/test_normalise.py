"""Normalisation of names, predicates and times (examples and properties)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pai_core.errors import InvalidInput
from pai_core.memory.graph.model import entity_key, normalise_predicate
from pai_core.memory.timeparse import iso, parse_time

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("raw", ["runs on", "runsOn", "runs-on", "RUNS_ON", " Runs On "])
def test_predicate_forms(raw: str) -> None:
    assert normalise_predicate(raw) == "RUNS_ON"


@pytest.mark.parametrize("raw", ["", "   ", "9lives", "runs on!", "a" * 65, "x\x00y", "é"])
def test_bad_predicates_are_refused(raw: str) -> None:
    with pytest.raises(InvalidInput) as info:
        normalise_predicate(raw)
    assert info.value.details["field"] == "predicate"


def test_entity_keys() -> None:
    assert entity_key("MemBrane") == entity_key("membrane") == entity_key("  MEMBRANE ")
    assert entity_key("Mem  Brane") == entity_key("mem brane")
    assert entity_key("Mem Brane") != entity_key("MemBrane")
    for bad in ["", "  ", "a\x07b", "x" * 201]:
        with pytest.raises(InvalidInput):
            entity_key(bad)


@given(st.text(min_size=1, max_size=60).filter(lambda s: s.strip()))
def test_entity_key_is_idempotent_and_case_blind(name: str) -> None:
    try:
        key = entity_key(name)
    except InvalidInput:
        return
    assert entity_key(key) == key
    assert (
        entity_key(name.upper()) == entity_key(name.lower()) or name.upper().lower() != name.lower()
    )


@given(st.from_regex(r"[A-Za-z][A-Za-z0-9 _-]{0,40}", fullmatch=True))
def test_predicate_normalisation_is_idempotent(raw: str) -> None:
    try:
        out = normalise_predicate(raw)
    except InvalidInput:
        return
    assert re.fullmatch(r"[A-Z][A-Z0-9_]*", out)
    assert normalise_predicate(out) == out


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-20", datetime(2026, 11, 20, tzinfo=UTC)),
        ("2026-11-20T14:00Z", datetime(2026, 11, 20, 14, tzinfo=UTC)),
        ("2026-11-20T15:00+01:00", datetime(2026, 11, 20, 14, tzinfo=UTC)),
        ("yesterday", datetime(2026, 11, 23, tzinfo=UTC)),
        ("today", datetime(2026, 11, 24, tzinfo=UTC)),
        ("7d", datetime(2026, 11, 17, 12, tzinfo=UTC)),
        ("2 hours ago", datetime(2026, 11, 24, 10, tzinfo=UTC)),
        ("an hour ago", datetime(2026, 11, 24, 11, tzinfo=UTC)),
        ("last week", datetime(2026, 11, 17, 12, tzinfo=UTC)),
        ("this week", datetime(2026, 11, 23, tzinfo=UTC)),
        ("in 2 days", datetime(2026, 11, 26, 12, tzinfo=UTC)),
        ("now", NOW),
    ],
)
def test_times(text: str, expected: datetime) -> None:
    assert parse_time(text, field="t", now=NOW) == expected.timestamp()


@pytest.mark.parametrize("text", ["", "next blue moon", "2026-13-40", "7 parsecs ago"])
def test_bad_times_name_the_field(text: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_time(text, field="valid_from", now=NOW)
    assert info.value.details["field"] == "valid_from"


@given(st.floats(min_value=0, max_value=4e9))
def test_iso_round_trips(ts: float) -> None:
    assert abs(parse_time(iso(ts) or "", field="t") - ts) < 0.001
