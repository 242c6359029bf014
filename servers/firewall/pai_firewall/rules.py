"""Structured firewall rules: the only way a rule enters this server (never raw nft text).

A :class:`Rule` names its chain (``input``, ``forward`` or ``output`` of the owned table), the
protocol, source/destination addresses (CIDRs, several make an anonymous set), ports (numbers
or ``a-b`` ranges), conntrack states, interfaces, the action, and the metadata the constitution
checks: comment, owner and expiry. Every value is validated here, so what reaches the renderer
can only produce the nft syntax the renderer writes. A :class:`Ruleset` is the whole owned table.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import json
import re
import time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "CHAINS",
    "STATES",
    "Chain",
    "Rule",
    "RuleFields",
    "RuleIn",
    "Ruleset",
    "TableRef",
    "parse_ports",
]

CHAINS = ("input", "forward", "output")
STATES = ("new", "established", "related", "invalid", "untracked")
Protocol = Literal["any", "tcp", "udp", "icmp", "icmpv6"]
Action = Literal["accept", "drop", "reject"]
Policy = Literal["accept", "drop"]

_COMMENT = re.compile(r"^[A-Za-z0-9 ._,:/@()+=-]*$")
_OWNER = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,23}$")
_IFNAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
_TABLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")
MAX_COMMENT = 64
MAX_SET = 64


class TableRef(BaseModel):
    """``family name`` of the owned table, e.g. ``inet pai``."""

    model_config = ConfigDict(frozen=True)
    family: Literal["inet", "ip", "ip6"] = "inet"
    name: str = "pai"

    @classmethod
    def parse(cls, text: str) -> TableRef:
        parts = text.split()
        if len(parts) == 1:
            parts = ["inet", parts[0]]
        if len(parts) != 2 or parts[0] not in ("inet", "ip", "ip6"):
            raise ValueError(f"table {text!r} must be '<inet|ip|ip6> <name>', e.g. 'inet pai'")
        if not _TABLE_NAME.match(parts[1]):
            raise ValueError(f"table name {parts[1]!r} must be letters, digits, '_' or '-'")
        return cls(family=parts[0], name=parts[1])

    def __str__(self) -> str:
        return f"{self.family} {self.name}"


@functools.lru_cache(maxsize=65536)
def _port(value: int | str, field: str) -> tuple[int, int]:
    text = str(value).strip()
    lo_s, sep, hi_s = text.partition("-")
    try:
        lo = int(lo_s)
        hi = int(hi_s) if sep else lo
    except ValueError:
        raise ValueError(
            f"{field}: {value!r} is not a port; use a number 0..65535 or a range 'a-b'"
        ) from None
    for p in (lo, hi):
        if not 0 <= p <= 65535:
            raise ValueError(f"{field}: port {p} is out of range 0..65535")
    if lo > hi:
        raise ValueError(f"{field}: range {text!r} runs backwards")
    return lo, hi


def parse_ports(values: list[int | str], field: str) -> list[tuple[int, int]]:
    """Port specs as sorted ``(lo, hi)`` intervals."""
    return sorted(_port(v, field) for v in values)


def _norm_ports(values: list[int | str], field: str) -> list[int | str]:
    """Overlapping and adjacent ports merged into maximal ranges (nft merges them too), so a
    set has exactly one spelling."""
    merged: list[list[int]] = []
    for lo, hi in parse_ports(values, field):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    return [lo if lo == hi else f"{lo}-{hi}" for lo, hi in merged]


@functools.lru_cache(maxsize=65536)
def _canonical_net(text: str) -> str:
    return str(ipaddress.ip_network(text, strict=True))


def _norm_addrs(values: list[str], field: str) -> list[str]:
    """Addresses as the smallest list of CIDRs covering the same set (nft merges overlapping
    elements of a set), IPv4 first, so equal sets compare equal."""
    canon: list[str] = []
    for v in values:
        try:
            canon.append(_canonical_net(str(v).strip()))
        except ValueError as exc:
            raise ValueError(
                f"{field}: {v!r} is not a valid address or CIDR ({exc}); "
                "use e.g. 10.0.0.0/8, 198.51.100.7 or 2001:db8::/32"
            ) from None
    if len(canon) <= 1:
        return canon
    nets = [ipaddress.ip_network(c) for c in canon]
    v4 = [n for n in nets if isinstance(n, ipaddress.IPv4Network)]
    v6 = [n for n in nets if isinstance(n, ipaddress.IPv6Network)]
    return [str(n) for n in ipaddress.collapse_addresses(v4)] + [
        str(n) for n in ipaddress.collapse_addresses(v6)
    ]


def family_of(addrs: list[str]) -> int | None:
    """4 or 6 when every address is of that family, None when there are none."""
    versions = {6 if ":" in a else 4 for a in addrs}  # addrs are canonical CIDRs
    if len(versions) > 1:
        raise ValueError("mixes IPv4 and IPv6 addresses; split it into one rule per family")
    return versions.pop() if versions else None


class RuleFields(BaseModel):
    """What a rule matches and does, and the metadata the constitution checks."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    chain: str = Field(description="Chain of the owned table: input, forward or output.")
    protocol: Protocol = Field("any", description="Layer-4 protocol (ports need tcp or udp).")
    saddr: list[str] = Field(
        default_factory=list, description="Source addresses/CIDRs (empty: any)."
    )
    daddr: list[str] = Field(
        default_factory=list, description="Destination addresses/CIDRs (empty: any)."
    )
    sport: list[int | str] = Field(
        default_factory=list, description="Source ports, numbers or 'a-b' ranges (empty: any)."
    )
    dport: list[int | str] = Field(
        default_factory=list, description="Destination ports, numbers or 'a-b' (empty: any)."
    )
    state: list[Literal["new", "established", "related", "invalid", "untracked"]] = Field(
        default_factory=list, description="Conntrack states (empty: any)."
    )
    in_interface: str | None = Field(
        None, description="Inbound interface (input and forward chains)."
    )
    out_interface: str | None = Field(
        None, description="Outbound interface (output and forward chains)."
    )
    action: Action = Field(description="accept, drop or reject.")
    comment: str = Field("", description="Why the rule exists (letters, digits, ' ._,:/@()+=-').")
    owner: str = Field("model", description="Who owns the rule, e.g. 'model' or 'ops'.")

    @field_validator("chain")
    @classmethod
    def _chain(cls, v: str) -> str:
        if v not in CHAINS:
            raise ValueError(f"unknown chain {v!r}: the owned table has {', '.join(CHAINS)}")
        return v

    @field_validator("saddr", "daddr")
    @classmethod
    def _addrs(cls, v: list[str], info: object) -> list[str]:
        name = getattr(info, "field_name", "address")
        if len(v) > MAX_SET:
            raise ValueError(f"{name}: at most {MAX_SET} addresses per rule")
        return _norm_addrs(v, name)

    @field_validator("sport", "dport")
    @classmethod
    def _ports(cls, v: list[int | str], info: object) -> list[int | str]:
        name = getattr(info, "field_name", "port")
        if len(v) > MAX_SET:
            raise ValueError(f"{name}: at most {MAX_SET} ports per rule")
        return _norm_ports(v, name)

    @field_validator("state")
    @classmethod
    def _states(cls, v: list[str]) -> list[str]:
        return sorted(set(v), key=STATES.index)

    @field_validator("in_interface", "out_interface")
    @classmethod
    def _ifname(cls, v: str | None) -> str | None:
        if v is not None and not _IFNAME.match(v):
            raise ValueError(f"interface {v!r} must be 1-15 letters, digits, '_', '.' or '-'")
        return v

    @field_validator("comment")
    @classmethod
    def _comment(cls, v: str) -> str:
        v = v.strip()
        if len(v) > MAX_COMMENT:
            raise ValueError(f"comment is longer than {MAX_COMMENT} characters")
        if not _COMMENT.match(v):
            bad = sorted({c for c in v if not _COMMENT.match(c)})
            raise ValueError(
                f"comment contains {''.join(bad)!r}: only letters, digits, spaces and "
                "'._,:/@()+=-' are allowed (no quotes, ';', braces or '#')"
            )
        return v

    @field_validator("owner")
    @classmethod
    def _owner(cls, v: str) -> str:
        if not _OWNER.match(v):
            raise ValueError("owner must be 1-24 lower-case letters, digits, '_', '.' or '-'")
        return v

    @model_validator(mode="after")
    def _coherent(self) -> RuleFields:
        if (self.sport or self.dport) and self.protocol not in ("tcp", "udp"):
            raise ValueError("ports need protocol tcp or udp")
        fam = family_of(self.saddr + self.daddr)
        if self.protocol == "icmp" and fam == 6:
            raise ValueError("protocol icmp with IPv6 addresses: use icmpv6")
        if self.protocol == "icmpv6" and fam == 4:
            raise ValueError("protocol icmpv6 with IPv4 addresses: use icmp")
        if self.in_interface and self.chain == "output":
            raise ValueError("in_interface is not available in the output chain")
        if self.out_interface and self.chain == "input":
            raise ValueError("out_interface is not available in the input chain")
        return self

    @property
    def family(self) -> int | None:
        return family_of(self.saddr + self.daddr)


class RuleIn(RuleFields):
    """A rule as the model proposes it (the server assigns its id)."""

    expires_in_days: float | None = Field(
        None, gt=0, le=3650, description="Days until the rule expires (None: never)."
    )


class Rule(RuleFields):
    """One rule of a chain of the owned table, first match wins."""

    id: str | None = Field(None, description="Stable id, assigned when the rule is planned.")
    expires_at: int | None = Field(
        None, description="Epoch seconds after which the rule is expired (None: never)."
    )

    @field_validator("id")
    @classmethod
    def _id(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[0-9a-f]{8}", v):
            raise ValueError("rule id is 8 hex digits (see list_rules)")
        return v

    def expired(self, now: float | None = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or time.time())

    def summary(self) -> str:
        """One line a person reads, e.g. ``tcp dport 22 saddr 10.0.0.0/8 accept``."""
        parts: list[str] = []
        if self.in_interface:
            parts.append(f"iif {self.in_interface}")
        if self.out_interface:
            parts.append(f"oif {self.out_interface}")
        if self.protocol != "any":
            parts.append(self.protocol)
        for name in ("saddr", "daddr", "sport", "dport"):
            vals = getattr(self, name)
            if vals:
                parts.append(f"{name} {','.join(str(x) for x in vals)}")
        if self.state:
            parts.append(f"state {','.join(self.state)}")
        parts.append(self.action)
        return " ".join(parts)


class Chain(BaseModel):
    """A base chain of the owned table: its default policy and its rules, in order."""

    model_config = ConfigDict(extra="forbid")
    name: str
    policy: Policy = "accept"
    rules: list[Rule] = Field(default_factory=list)


class Ruleset(BaseModel):
    """The whole owned table as this server writes it."""

    model_config = ConfigDict(extra="forbid")
    exists: bool = True
    chains: dict[str, Chain] = Field(
        default_factory=lambda: {name: Chain(name=name) for name in CHAINS}
    )
    foreign: list[str] = Field(
        default_factory=list,
        description="Rules or chains in the table this server did not write (as nft shows them).",
    )

    @classmethod
    def empty(cls, exists: bool = False) -> Ruleset:
        return cls(exists=exists)

    def editable_copy(self) -> Ruleset:
        """An existing table with the same chains and rules, whose lists can be edited (rules
        are immutable, so they are shared)."""
        chains = {
            n: Chain.model_construct(name=n, policy=c.policy, rules=list(c.rules))
            for n, c in self.chains.items()
        }
        return Ruleset.model_construct(exists=True, chains=chains, foreign=list(self.foreign))

    def rules(self) -> list[Rule]:
        return [r for name in CHAINS for r in self.chains[name].rules]

    def find(self, rule_id: str) -> tuple[str, int, Rule] | None:
        for name in CHAINS:
            for i, r in enumerate(self.chains[name].rules):
                if r.id == rule_id:
                    return name, i, r
        return None

    def checksum(self) -> str:
        """SHA-256 over what the table does (chains, policies, rules), not kernel handles."""
        body = {
            "exists": self.exists,
            "chains": {
                n: {"policy": c.policy, "rules": [r.model_dump() for r in c.rules]}
                for n, c in sorted(self.chains.items())
            },
            "foreign": self.foreign,
        }
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
