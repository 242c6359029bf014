"""Render a :class:`~pai_firewall.rules.Ruleset` as nft input: one atomic replacement of the table.

The text declares the table (so deleting it cannot fail), deletes it, and declares it again
with every chain and rule: ``nft -f`` runs the three as one kernel transaction, so the table is
either entirely the old one or entirely the new one. Nothing outside the owned table is named.
A rule's id, owner and expiry travel in its nft comment as ``pai:<id>:<owner>:<expiry>:<text>``
(the parser reads them back); every value was validated by :mod:`pai_firewall.rules`.
"""

from __future__ import annotations

from collections.abc import Sequence

from pai_firewall.rules import CHAINS, Rule, Ruleset, TableRef

__all__ = ["META_PREFIX", "render_comment", "render_rule", "render_table"]

META_PREFIX = "pai:"


def render_comment(rule: Rule) -> str:
    return f"{META_PREFIX}{rule.id}:{rule.owner}:{rule.expires_at or 0}:{rule.comment}"


def _values(values: Sequence[object]) -> str:
    items = [str(v) for v in values]
    return items[0] if len(items) == 1 else "{ " + ", ".join(items) + " }"


def render_rule(rule: Rule) -> str:
    parts: list[str] = []
    if rule.in_interface:
        parts.append(f'iifname "{rule.in_interface}"')
    if rule.out_interface:
        parts.append(f'oifname "{rule.out_interface}"')
    for field in ("saddr", "daddr"):
        addrs: list[str] = getattr(rule, field)
        if addrs:
            proto = "ip6" if ":" in addrs[0] else "ip"  # canonical CIDRs
            parts.append(f"{proto} {field} {_values(addrs)}")
    if rule.sport or rule.dport:
        if rule.sport:
            parts.append(f"{rule.protocol} sport {_values(rule.sport)}")
        if rule.dport:
            parts.append(f"{rule.protocol} dport {_values(rule.dport)}")
    elif rule.protocol != "any":
        parts.append(f"meta l4proto {rule.protocol}")
    if rule.state:
        parts.append(f"ct state {_values(rule.state)}")
    parts.append(rule.action)
    parts.append(f'comment "{render_comment(rule)}"')
    return " ".join(parts)


def render_table(table: TableRef, ruleset: Ruleset) -> str:
    """nft input that replaces the owned table with ``ruleset`` (or removes it) atomically."""
    lines = [f"table {table} {{}}", f"delete table {table}"]
    if not ruleset.exists:
        return "\n".join(lines) + "\n"
    lines.append(f"table {table} {{")
    for name in CHAINS:
        chain = ruleset.chains[name]
        lines.append(f"  chain {name} {{")
        lines.append(f"    type filter hook {name} priority filter; policy {chain.policy};")
        lines.extend(f"    {render_rule(r)}" for r in chain.rules)
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"
