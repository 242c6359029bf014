"""Times as people and models write them: ISO 8601 and relative forms, all to UTC.

Accepted: ISO 8601 (``2026-11-20``, ``2026-11-20T14:00``, ``…Z``, ``…+01:00``), ``now``,
``today``, ``yesterday``, ``tomorrow``, ``this week``, ``last week``, ``this month``,
``last month``, ``7d`` / ``2h`` / ``30m`` / ``90s`` / ``3w`` (that long ago), ``2 hours ago``,
``3 days ago``, ``in 2 days``, and epoch seconds.

Every time lies in the years 1 to 9999 in UTC (after its offset is applied): the calendar that
ISO 8601 output can show. Anything outside — ``99999 years ago``, ``9999-12-31T23:59-23:59``, a
20-digit day count — is refused with an :class:`InvalidInput` naming the field, so it is never
stored; :func:`iso` never raises, even for a value stored from elsewhere.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

from pai_core.errors import InvalidInput

__all__ = ["EARLIEST", "LATEST", "in_range", "iso", "parse_time"]

EARLIEST = datetime(1, 1, 1, tzinfo=UTC).timestamp()
LATEST = datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC).timestamp()

_UNITS = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "h": 3600,
    "hr": 3600,
    "hour": 3600,
    "d": 86400,
    "day": 86400,
    "w": 604800,
    "week": 604800,
    "month": 2592000,
    "mo": 2592000,
    "y": 31536000,
    "year": 31536000,
}
_SHORT = re.compile(r"^(\d+(?:\.\d+)?)\s*([a-z]+?)s?$")
_AGO = re.compile(r"^(\d+(?:\.\d+)?|an?|one)\s+([a-z]+?)s?\s+ago$")
_IN = re.compile(r"^in\s+(\d+(?:\.\d+)?|an?|one)\s+([a-z]+?)s?$")
_HINT = (
    "Use ISO 8601 (2026-11-20T14:00Z) or a relative form such as 'yesterday', "
    "'last week', '7d' or '2 hours ago'."
)


def _midnight(dt: datetime) -> datetime:
    return dt.replace(hour=0, minute=0, second=0, microsecond=0)


def in_range(ts: float) -> bool:
    """Whether epoch seconds ``ts`` fall in the years 1 to 9999 (UTC)."""
    return math.isfinite(ts) and EARLIEST <= ts <= LATEST


def _checked(ts: float, value: object, field: str) -> float:
    if not in_range(ts):
        shown = value if not isinstance(value, str) or len(value) <= 80 else value[:77] + "..."
        raise InvalidInput(
            f"{field}={shown!r} is outside the years 1 to 9999 (UTC)",
            field=field,
            hint="Give a time between 0001-01-01 and 9999-12-31 in UTC; nothing was changed.",
        )
    return ts


def parse_time(
    value: str | float | int | datetime, *, field: str, now: datetime | None = None
) -> float:
    """Epoch seconds (UTC) for ``value``; ``InvalidInput`` naming ``field`` if it cannot parse
    or lies outside the years 1 to 9999."""
    now = now or datetime.now(UTC)
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return _checked(aware.timestamp(), value.isoformat(), field)
    if isinstance(value, int | float):
        return _checked(float(value), value, field)
    text = value.strip().lower()
    if not text:
        raise InvalidInput(f"{field} is empty", field=field, hint=_HINT)
    fixed = {
        "now": now,
        "today": _midnight(now),
        "yesterday": _midnight(now) - timedelta(days=1),
        "tomorrow": _midnight(now) + timedelta(days=1),
        "this week": _midnight(now) - timedelta(days=now.weekday()),
        "last week": now - timedelta(days=7),
        "this month": _midnight(now).replace(day=1),
        "last month": now - timedelta(days=30),
    }
    if text in fixed:
        return fixed[text].timestamp()
    for pattern, sign in ((_AGO, -1), (_IN, 1), (_SHORT, -1)):
        m = pattern.match(text)
        if m:
            amount_text, unit = m.groups()
            amount = 1.0 if amount_text in ("a", "an", "one") else float(amount_text)
            if unit in _UNITS:
                return _checked(now.timestamp() + sign * amount * _UNITS[unit], value, field)
    if re.fullmatch(r"\d{9,11}(\.\d+)?", text):
        return _checked(float(text), value, field)
    try:
        dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
        ts = (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()
    except (ValueError, OverflowError):
        shown = value if len(value) <= 80 else value[:77] + "..."
        raise InvalidInput(
            f"{field}={shown!r} is not a time I understand", field=field, hint=_HINT
        ) from None
    return _checked(ts, value, field)


def iso(ts: float | None) -> str | None:
    """Epoch seconds → ISO 8601 UTC with millisecond precision (None stays None).

    Never raises: a value past either end of the calendar shows as that end, NaN as None."""
    if ts is None or math.isnan(ts):
        return None
    ts = min(max(ts, EARLIEST), LATEST)
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
