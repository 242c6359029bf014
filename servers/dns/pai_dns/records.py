"""Record changes as plain values: parsing, name and rdata validation, canonical forms.

A change names an RRset (owner name + type) and what to do with it:

- ``set``: the RRset becomes exactly ``values`` (with ``ttl``);
- ``add``: ``values`` are added to the RRset;
- ``delete``: the whole RRset goes, or only ``values`` when given.

Names may be relative to the zone (``www``, ``@`` for the apex) or absolute (``www.example.``).
Internationalised names are converted with IDNA. Rdata is parsed by dnspython for its type, so
``values`` must be valid presentation format (``10 mail.example.test.`` for MX).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype

from pai_core.errors import InvalidInput

__all__ = [
    "SUPPORTED_TYPES",
    "Change",
    "RRset",
    "absolute_name",
    "parse_change",
    "relative_name",
]

SUPPORTED_TYPES = ("A", "AAAA", "CNAME", "MX", "TXT", "SRV", "CAA", "NS", "PTR")
Action = Literal["set", "add", "delete"]


@dataclass(frozen=True, slots=True)
class RRset:
    """An RRset in canonical form: absolute lowercase name, type, TTL, sorted rdata texts."""

    name: str
    rtype: str
    ttl: int
    values: tuple[str, ...]

    def key(self) -> tuple[str, str]:
        return (self.name, self.rtype)

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "type": self.rtype, "ttl": self.ttl, "values": list(self.values)}


@dataclass(frozen=True, slots=True)
class Change:
    """One validated change to one RRset."""

    action: Action
    name: str
    rtype: str
    ttl: int | None
    values: tuple[str, ...] = field(default=())

    def key(self) -> tuple[str, str]:
        return (self.name, self.rtype)


def absolute_name(name: str, zone: str, *, field: str = "name") -> str:
    """``www`` / ``@`` / ``www.example.test.`` → canonical absolute lowercase name in ``zone``.

    Errors name ``field`` (``changes[2].name`` inside a plan)."""
    origin = dns.name.from_text(zone)
    text = name.strip()
    if not text:
        raise InvalidInput("record name is empty", field=field, hint="Use '@' for the apex.")
    try:
        if text == "@":
            parsed = origin
        elif text.endswith("."):
            parsed = dns.name.from_text(_idna(text, field))
        else:
            parsed = dns.name.from_text(_idna(text, field), origin=origin)
    except (dns.name.LabelTooLong, dns.name.NameTooLong) as exc:
        raise InvalidInput(
            f"record name {name!r} is too long ({exc})",
            field=field,
            hint="Labels are at most 63 octets and names at most 255.",
        ) from exc
    except dns.exception.DNSException as exc:
        raise InvalidInput(
            f"record name {name!r} is not a valid DNS name: {exc}", field=field
        ) from exc
    if not parsed.is_subdomain(origin):
        raise InvalidInput(f"{parsed} is not inside zone {origin}", field=field)
    for label in parsed.labels:
        if label and not all(
            c in b"abcdefghijklmnopqrstuvwxyz0123456789-_*" for c in label.lower()
        ):
            raise InvalidInput(
                f"record name {name!r} has characters DNS hostnames cannot carry",
                field=field,
                hint="Use letters, digits, hyphens (and '_' for service labels).",
            )
    return parsed.to_text().lower()


def relative_name(name: str, zone: str) -> str:
    """Absolute ``name`` relative to ``zone`` (``@`` for the apex)."""
    rel = dns.name.from_text(name).relativize(dns.name.from_text(zone)).to_text()
    return rel


def _idna(text: str, field: str) -> str:
    if text.isascii():
        return text
    try:
        return text.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise InvalidInput(
            f"{text!r} is not a valid internationalised name: {exc}", field=field
        ) from exc


def canonical_rdata(rtype: str, value: str, zone: str, *, field: str = "values") -> str:
    """Parse ``value`` as ``rtype`` rdata (relative names against ``zone``); canonical text.

    Errors name ``field`` (``changes[2].values`` inside a plan)."""
    try:
        rdata = dns.rdata.from_text(
            dns.rdataclass.IN,
            dns.rdatatype.from_text(rtype),
            value,
            origin=dns.name.from_text(zone),
            relativize=False,
        )
    except Exception as exc:  # dnspython raises many types for bad rdata
        raise InvalidInput(
            f"{value!r} is not valid {rtype} data: {exc}",
            field=field,
            hint=_RDATA_HINTS.get(rtype, "Use the record's presentation format."),
        ) from exc
    return (
        rdata.to_text().lower() if rtype in ("CNAME", "NS", "PTR", "MX", "SRV") else rdata.to_text()
    )


_RDATA_HINTS = {
    "A": "An IPv4 address such as 192.0.2.10.",
    "AAAA": "An IPv6 address such as 2001:db8::10.",
    "CNAME": "A host name such as target.example.test.",
    "MX": "Preference and host, such as '10 mail.example.test.'.",
    "TXT": 'Quoted strings, such as "v=spf1 -all".',
    "SRV": "Priority, weight, port and target, such as '10 5 443 host.example.test.'.",
    "CAA": "Flags, tag and value, such as '0 issue \"letsencrypt.org\"'.",
}


def parse_change(raw: dict[str, object], zone: str, *, index: int) -> Change:
    """Validate one change dict into a :class:`Change` (error fields name ``changes[i]``)."""
    where = f"changes[{index}]"
    action = str(raw.get("action", "set")).lower()
    if action not in ("set", "add", "delete"):
        raise InvalidInput(f"{where}.action must be set, add or delete", field=f"{where}.action")
    rtype = str(raw.get("type", "")).upper()
    if rtype not in SUPPORTED_TYPES:
        raise InvalidInput(
            f"{where}.type {rtype!r} is not supported",
            field=f"{where}.type",
            hint=f"Use one of {', '.join(SUPPORTED_TYPES)}.",
        )
    name = absolute_name(str(raw.get("name", "")), zone, field=f"{where}.name")
    values_raw = raw.get("values", [])
    if isinstance(values_raw, str):
        values_raw = [values_raw]
    if not isinstance(values_raw, list):
        raise InvalidInput(f"{where}.values must be a list of strings", field=f"{where}.values")
    values = tuple(
        sorted({canonical_rdata(rtype, str(v), zone, field=f"{where}.values") for v in values_raw})
    )
    if action in ("set", "add") and not values:
        raise InvalidInput(f"{where}: {action} needs at least one value", field=f"{where}.values")
    if rtype == "CNAME" and len(values) > 1:
        raise InvalidInput(f"{where}: a CNAME has exactly one target", field=f"{where}.values")
    ttl_raw = raw.get("ttl")
    ttl: int | None = None
    if ttl_raw is not None:
        try:
            ttl = int(str(ttl_raw))
        except ValueError as exc:
            raise InvalidInput(f"{where}.ttl must be an integer", field=f"{where}.ttl") from exc
    return Change(action=action, name=name, rtype=rtype, ttl=ttl, values=values)  # type: ignore[arg-type]
