"""A packet-matching evaluator over structured rules: which rule decides a packet, and why.

A packet *class* (:class:`PacketSpec`: a chain, a protocol, addresses or CIDRs, ports or ranges,
conntrack states, interfaces; anything left out means "any") is a box in an 8-dimensional
space (l4proto, saddr, daddr, sport, dport, ct state, iif, oif), one space per IP family. A
rule matches a union of boxes. Walking a chain in order, each rule takes the part of the class
it matches (first match wins) and the rest falls through; what no rule takes meets the chain
policy. The result is an exact partition of the class into pieces, each with the verdict and
the rule (or policy) that decides it, so "TCP 22 from 10.0.0.0/8 is accepted" is proven for
every address of 10/8, and a broad drop above the allow, or a new drop policy, is caught.

Only this table is evaluated: another table on the same hook may still drop what this one
accepts (that is what the self-check's real probes are for).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pai_firewall.rules import CHAINS, STATES, Rule, Ruleset, parse_ports

__all__ = ["Decision", "PacketSpec", "Piece", "decide", "interfaces", "pieces"]

Interval = tuple[int, int]
Box = tuple[Interval, ...]
PROTO, SADDR, DADDR, SPORT, DPORT, STATE, IIF, OIF = range(8)
_PROTO_NUM = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58}
_PROTO_NAME = {v: k for k, v in _PROTO_NUM.items()}
_ADDR_MAX = {4: 2**32 - 1, 6: 2**128 - 1}


class PacketSpec(BaseModel):
    """A packet, or a class of packets (a CIDR or a port range stands for all its members)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    chain: str = Field("input", description="input (to this host), forward or output.")
    protocol: Literal["any", "tcp", "udp", "icmp", "icmpv6"] = Field(
        "any", description="Layer-4 protocol."
    )
    saddr: str | None = Field(None, description="Source address or CIDR (empty: any).")
    daddr: str | None = Field(None, description="Destination address or CIDR (empty: any).")
    sport: int | str | None = Field(None, description="Source port or 'a-b' (empty: any).")
    dport: int | str | None = Field(None, description="Destination port or 'a-b' (empty: any).")
    state: list[Literal["new", "established", "related", "invalid", "untracked"]] = Field(
        default_factory=lambda: ["new"],  # type: ignore[arg-type]
        description="Conntrack states (default: new).",
    )
    in_interface: str | None = Field(None, description="Inbound interface (empty: any).")
    out_interface: str | None = Field(None, description="Outbound interface (empty: any).")

    @field_validator("chain")
    @classmethod
    def _chain(cls, v: str) -> str:
        if v not in CHAINS:
            raise ValueError(f"unknown chain {v!r}: the owned table has {', '.join(CHAINS)}")
        return v

    @field_validator("saddr", "daddr")
    @classmethod
    def _addr(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            return str(ipaddress.ip_network(v.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{v!r} is not an address or CIDR") from None

    @field_validator("sport", "dport")
    @classmethod
    def _port(cls, v: int | str | None) -> int | str | None:
        if v is None:
            return v
        ((lo, hi),) = parse_ports([v], "port")
        return lo if lo == hi else f"{lo}-{hi}"

    def families(self) -> list[int]:
        versions = {ipaddress.ip_network(a).version for a in (self.saddr, self.daddr) if a}
        if len(versions) > 1:
            raise ValueError("saddr and daddr are of different IP families")
        if self.protocol == "icmp":
            versions = versions or {4}
        if self.protocol == "icmpv6":
            versions = versions or {6}
        return sorted(versions) if versions else [4, 6]


@dataclass(frozen=True, slots=True)
class Piece:
    """A part of a packet class and what decides it."""

    family: int
    box: Box
    verdict: str
    rule: Rule | None  # None: the chain policy
    position: int | None  # index of the rule in its chain

    def example(self, names: list[str]) -> dict[str, object]:
        """The lowest packet of the piece, as a PacketSpec-shaped dict."""
        lo = [iv[0] for iv in self.box]
        ver = self.family

        def addr(i: int) -> str:
            return str(ipaddress.ip_address(lo[i]) if ver == 4 else ipaddress.IPv6Address(lo[i]))

        def iface(i: int) -> str | None:
            return names[lo[i]] if lo[i] < len(names) else None

        return {
            "family": f"ipv{ver}",
            "protocol": _PROTO_NAME.get(lo[PROTO], str(lo[PROTO])),
            "saddr": addr(SADDR),
            "daddr": addr(DADDR),
            "sport": lo[SPORT],
            "dport": lo[DPORT],
            "state": STATES[lo[STATE]],
            "in_interface": iface(IIF),
            "out_interface": iface(OIF),
        }


@functools.lru_cache(maxsize=65536)
def _addr_iv(cidr: str) -> Interval:
    net = ipaddress.ip_network(cidr)
    return int(net.network_address), int(net.broadcast_address)


def interfaces(ruleset: Ruleset, spec: PacketSpec) -> list[str]:
    names = {spec.in_interface, spec.out_interface}
    for r in ruleset.rules():
        names |= {r.in_interface, r.out_interface}
    return sorted(n for n in names if n)


def _iface_ivs(name: str | None, names: list[str]) -> list[Interval]:
    if name is None:
        return [(0, len(names))]  # every named interface, and "any other" (= len(names))
    i = names.index(name)
    return [(i, i)]


def _spec_box(spec: PacketSpec, family: int, names: list[str]) -> Box:
    full = (0, _ADDR_MAX[family])
    proto = (0, 255) if spec.protocol == "any" else (_PROTO_NUM[spec.protocol],) * 2
    states = sorted(STATES.index(s) for s in spec.state) or [0]
    port = (0, 65535)
    return (
        proto,
        _addr_iv(spec.saddr) if spec.saddr else full,
        _addr_iv(spec.daddr) if spec.daddr else full,
        parse_ports([spec.sport], "sport")[0] if spec.sport is not None else port,
        parse_ports([spec.dport], "dport")[0] if spec.dport is not None else port,
        (min(states), max(states)),
        _iface_ivs(spec.in_interface, names)[0],
        _iface_ivs(spec.out_interface, names)[0],
    )


def _rule_boxes(rule: Rule, family: int, names: list[str]) -> list[Box]:
    """The boxes a rule matches in ``family`` (none when its addresses are of the other)."""
    if rule.family not in (None, family):
        return []
    full_addr = [(0, _ADDR_MAX[family])]
    dims: list[list[Interval]] = [
        [(0, 255)] if rule.protocol == "any" else [(_PROTO_NUM[rule.protocol],) * 2],
        [_addr_iv(a) for a in rule.saddr] or full_addr,
        [_addr_iv(a) for a in rule.daddr] or full_addr,
        parse_ports(rule.sport, "sport") or [(0, 65535)],
        parse_ports(rule.dport, "dport") or [(0, 65535)],
        [(STATES.index(s),) * 2 for s in rule.state] or [(0, len(STATES) - 1)],
        _iface_ivs(rule.in_interface, names),
        _iface_ivs(rule.out_interface, names),
    ]
    boxes: list[Box] = [()]
    for ivs in dims:
        boxes = [(*b, iv) for b in boxes for iv in ivs]
    return boxes


def _intersect(a: Box, b: Box) -> Box | None:
    out = []
    for (alo, ahi), (blo, bhi) in zip(a, b, strict=True):
        lo, hi = max(alo, blo), min(ahi, bhi)
        if lo > hi:
            return None
        out.append((lo, hi))
    return tuple(out)


def _subtract(a: Box, b: Box) -> list[Box]:
    """``a`` minus ``b`` (which overlaps ``a``) as disjoint boxes."""
    rest: list[Box] = []
    cur = list(a)
    for i, ((lo, hi), (blo, bhi)) in enumerate(zip(a, b, strict=True)):
        if lo < blo:
            rest.append((*cur[:i], (lo, blo - 1), *cur[i + 1 :]))
        if hi > bhi:
            rest.append((*cur[:i], (bhi + 1, hi), *cur[i + 1 :]))
        cur[i] = (max(lo, blo), min(hi, bhi))
    return rest


def pieces(ruleset: Ruleset, spec: PacketSpec) -> Iterator[Piece]:
    """Partition ``spec`` by what decides each part, in chain order (lazily: stop early)."""
    chain = ruleset.chains[spec.chain]
    names = interfaces(ruleset, spec)
    for family in spec.families():
        remaining = [_spec_box(spec, family, names)]
        for pos, rule in enumerate(chain.rules):
            if not remaining:
                break
            rboxes = _rule_boxes(rule, family, names)
            for rbox in rboxes:
                left: list[Box] = []
                for box in remaining:
                    hit = _intersect(box, rbox)
                    if hit is None:
                        left.append(box)
                        continue
                    yield Piece(family, hit, rule.action, rule, pos)
                    left.extend(_subtract(box, rbox))
                remaining = left
        for box in remaining:
            yield Piece(family, box, chain.policy, None, None)


@dataclass(frozen=True, slots=True)
class Decision:
    """Every distinct way a packet class is decided (one entry for a single packet)."""

    spec: PacketSpec
    outcomes: list[Piece]
    interfaces: list[str]

    @property
    def verdicts(self) -> set[str]:
        return {p.verdict for p in self.outcomes}


def decide(ruleset: Ruleset, spec: PacketSpec, limit: int = 20) -> Decision:
    """The deciding rule (or policy) for each part of ``spec``, one outcome per rule."""
    seen: dict[tuple[int, int | None], Piece] = {}
    for piece in pieces(ruleset, spec):
        key = (piece.family, piece.position)
        if key not in seen:
            seen[key] = piece
            if len(seen) >= limit:
                break
    return Decision(spec, list(seen.values()), interfaces(ruleset, spec))
