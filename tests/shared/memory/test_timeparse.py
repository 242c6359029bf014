"""Times at the edges of the calendar: refused by name when unrepresentable, never a crash."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from pai_core.errors import InvalidInput
from pai_core.memory.graph.service import GraphService
from pai_core.memory.timeparse import EARLIEST, LATEST, iso, parse_time
from tests.shared.memory.facts import fact_in, facts_in

OUT_OF_RANGE = [
    "99999 years ago",
    "in 99999 years",
    "9999-12-31T23:59:59-23:59",  # the year 10000 in UTC
    "0001-01-01T00:00:00+23:59",  # the year 0 in UTC
    "11111111111111111111d",  # a 20-digit day count
    "11111111111111111111 days ago",
    "1" * 400 + "s",  # a float that overflows to infinity
]


@pytest.mark.parametrize("text", OUT_OF_RANGE)
def test_times_outside_the_calendar_are_refused_by_field(text: str) -> None:
    with pytest.raises(InvalidInput, match="outside the years 1 to 9999") as err:
        parse_time(text, field="valid_from")
    assert err.value.details["field"] == "valid_from"
    assert len(str(err.value)) < 400  # a long value is not echoed whole


BEHIND_UTC = timezone(-timedelta(hours=23))


@pytest.mark.parametrize(
    "value",
    [
        1e300,
        -1e300,
        float("inf"),
        float("nan"),
        datetime(9999, 12, 31, 23, 59, tzinfo=BEHIND_UTC),
    ],
)
def test_numbers_and_datetimes_outside_the_calendar_are_refused(value: object) -> None:
    with pytest.raises(InvalidInput, match="outside the years"):
        parse_time(value, field="at")  # type: ignore[arg-type]


def test_the_ends_of_the_calendar_are_accepted_and_format() -> None:
    first = parse_time("0001-01-01T00:00:00Z", field="t")
    last = parse_time("9999-12-31T23:59:59.999Z", field="t")
    assert first == EARLIEST and last == LATEST
    assert iso(first) == "0001-01-01T00:00:00.000Z"
    assert (iso(last) or "").startswith("9999-12-31T23:59:59")
    assert iso(parse_time("2026-11-20T14:00:00+01:00", field="t")) == "2026-11-20T13:00:00.000Z"


@pytest.mark.parametrize("ts", [1e30, -1e30, float("inf"), float("-inf"), LATEST + 1])
def test_iso_never_raises(ts: float) -> None:
    shown = iso(ts)
    assert shown is not None and shown[:4] in ("0001", "9999")
    assert iso(float("nan")) is None


def test_empty_time_says_what_to_give() -> None:
    with pytest.raises(InvalidInput, match="since is empty") as err:
        parse_time("  ", field="since")
    assert "yesterday" in str(err.value)


@pytest.mark.parametrize("text", OUT_OF_RANGE[:5])
def test_remember_fact_refuses_unrepresentable_times(graph: GraphService, text: str) -> None:
    for field in ("valid_from", "valid_to"):
        fact = {"subject": "a", "predicate": "USES", "object": "b", field: text}
        with pytest.raises(InvalidInput) as err:
            graph.remember(fact_in(fact))
        assert err.value.details["field"] == field
    with pytest.raises(InvalidInput) as err:
        graph.remember_many(
            facts_in(
                [
                    {"subject": "a", "predicate": "USES", "object": "c"},
                    {"subject": "a", "predicate": "USES", "object": "b", "valid_from": text},
                ]
            )
        )
    assert err.value.details["field"] == "facts[1].valid_from"
    assert graph.stats()["facts"] == 0  # nothing was written, not even the good first fact


@pytest.mark.parametrize("text", OUT_OF_RANGE[:5])
def test_timeline_refuses_unrepresentable_times(graph: GraphService, text: str) -> None:
    with pytest.raises(InvalidInput) as err:
        graph.timeline(since=text)
    assert err.value.details["field"] == "since"
    with pytest.raises(InvalidInput) as err:
        graph.timeline(since="0001-01-01", until=text)
    assert err.value.details["field"] == "until"


def test_timeline_needs_a_start(graph: GraphService) -> None:
    for since in ("", "   "):
        with pytest.raises(InvalidInput, match="since is empty") as err:
            graph.timeline(since=since)
        assert err.value.details["field"] == "since"
    whole = graph.timeline(since="0001-01-01", until="9999-12-31T23:59:59Z")
    assert whole.since == "0001-01-01T00:00:00.000Z" and whole.total_events == 0
