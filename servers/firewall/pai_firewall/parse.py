"""Parse ``nft -j list table <family> <name>`` into a :class:`~pai_firewall.rules.Ruleset`.

Only the shapes :mod:`pai_firewall.render` writes are understood. Anything else in the owned
table (a rule added by hand, a chain of another hook, an expression we never write) is kept as
text on ``Ruleset.foreign``: it is shown by ``list_rules`` and makes planning refuse, because
the evaluator could not tell what such a rule does.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from pydantic import ValidationError

from pai_firewall.render import META_PREFIX
from pai_firewall.rules import CHAINS, Chain, Rule, Ruleset

__all__ = ["UnknownExpression", "parse_table"]

_PROTO_NAMES = {
    "tcp": "tcp",
    "udp": "udp",
    "icmp": "icmp",
    "ipv6-icmp": "icmpv6",
    "icmpv6": "icmpv6",
}


class UnknownExpression(ValueError):
    """An expression this server never writes."""


def _elements(right: Any) -> list[Any]:
    if isinstance(right, dict) and "set" in right:
        items = right["set"]
        return list(items) if isinstance(items, list) else [items]
    if isinstance(right, list):
        return right
    return [right]


def _addr(el: Any) -> list[str]:
    if isinstance(el, str):
        return [f"{el}/128" if ":" in el else f"{el}/32"]
    if isinstance(el, dict) and "prefix" in el:
        return [f"{el['prefix']['addr']}/{el['prefix']['len']}"]
    if isinstance(el, dict) and "range" in el:
        lo, hi = (ipaddress.ip_address(x) for x in el["range"])
        return [str(n) for n in ipaddress.summarize_address_range(lo, hi)]
    raise UnknownExpression(f"address element {el!r}")


def _port(el: Any) -> int | str:
    if isinstance(el, int):
        return el
    if isinstance(el, dict) and "range" in el:
        lo, hi = el["range"]
        return f"{int(lo)}-{int(hi)}"
    raise UnknownExpression(f"port element {el!r}")


def _rule(chain: str, raw: dict[str, Any]) -> Rule:
    comment = str(raw.get("comment", ""))
    if not comment.startswith(META_PREFIX):
        raise UnknownExpression("no pai metadata in the comment")
    rule_id, owner, expiry, text = comment[len(META_PREFIX) :].split(":", 3)
    fields: dict[str, Any] = {
        "id": rule_id,
        "chain": chain,
        "owner": owner,
        "expires_at": int(expiry) or None,
        "comment": text,
    }
    for expr in raw.get("expr", []):
        if not isinstance(expr, dict) or len(expr) != 1:
            raise UnknownExpression(repr(expr))
        ((kind, body),) = expr.items()
        if kind in ("accept", "drop", "reject"):
            fields["action"] = kind
            continue
        if kind != "match" or body.get("op") not in ("==", "in"):
            raise UnknownExpression(repr(expr))
        left, right = body["left"], body["right"]
        if "meta" in left and left["meta"]["key"] in ("iifname", "oifname"):
            key = "in_interface" if left["meta"]["key"] == "iifname" else "out_interface"
            fields[key] = str(right)
        elif "meta" in left and left["meta"]["key"] == "l4proto":
            if right not in _PROTO_NAMES:
                raise UnknownExpression(f"l4proto {right!r}")
            fields["protocol"] = _PROTO_NAMES[right]
        elif "payload" in left and left["payload"]["protocol"] in ("ip", "ip6"):
            field = left["payload"]["field"]
            if field not in ("saddr", "daddr"):
                raise UnknownExpression(repr(expr))
            fields[field] = [a for el in _elements(right) for a in _addr(el)]
        elif "payload" in left and left["payload"]["protocol"] in ("tcp", "udp"):
            field = left["payload"]["field"]
            if field not in ("sport", "dport"):
                raise UnknownExpression(repr(expr))
            fields["protocol"] = left["payload"]["protocol"]
            fields[field] = [_port(el) for el in _elements(right)]
        elif "ct" in left and left["ct"]["key"] == "state":
            fields["state"] = [str(s) for s in _elements(right)]
        else:
            raise UnknownExpression(repr(expr))
    try:
        return Rule.model_validate(fields)
    except ValidationError as exc:
        raise UnknownExpression(str(exc)) from exc


def parse_table(text: str) -> Ruleset:
    """The owned table from ``nft -j list table`` output (empty text: no table)."""
    if not text.strip():
        return Ruleset.empty()
    items = json.loads(text).get("nftables", [])
    ruleset = Ruleset(exists=True, chains={})
    for item in items:
        if "chain" in item:
            c = item["chain"]
            name = c.get("name")
            if name in CHAINS and c.get("hook") == name and c.get("type") == "filter":
                ruleset.chains[name] = Chain(name=name, policy=c.get("policy", "accept"))
            else:
                ruleset.foreign.append(f"chain {name} (hook {c.get('hook')})")
        elif "rule" in item:
            r = item["rule"]
            chain = r.get("chain")
            if chain not in ruleset.chains:
                ruleset.foreign.append(f"rule handle {r.get('handle')} in chain {chain}")
                continue
            try:
                ruleset.chains[chain].rules.append(_rule(chain, r))
            except (UnknownExpression, ValueError) as exc:
                ruleset.foreign.append(f"rule handle {r.get('handle')} in chain {chain}: {exc}")
        elif "set" in item or "map" in item or "flowtable" in item or "obj" in item:
            kind = next(iter(item))
            ruleset.foreign.append(f"{kind} {item[kind].get('name')}")
    for name in CHAINS:
        if name not in ruleset.chains:
            ruleset.chains[name] = Chain(name=name)
            ruleset.foreign.append(f"chain {name} is missing")
    ruleset.chains = {name: ruleset.chains[name] for name in CHAINS}
    return ruleset
