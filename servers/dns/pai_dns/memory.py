"""What a verified DNS change says in the shared memory.

Each touched RRset becomes one fact ``<name> HAS_<TYPE> <values>`` (names without the trailing
dot, values sorted and joined by ", "): single-valued per name and type, so a change supersedes
the old value and the history keeps it. A deleted RRset ends the current fact.
"""

from __future__ import annotations

from typing import Any

from pai_core.memory.record import ChangeFact, PredicateSpec

__all__ = ["PREDICATES", "change_facts"]

RECORD_TYPES = ("A", "AAAA", "CNAME", "MX", "TXT", "SRV", "CAA", "NS", "PTR")
PREDICATES = tuple(
    PredicateSpec(f"HAS_{t}", "one", f"The DNS {t} record set of a name (values joined).")
    for t in RECORD_TYPES
)


def change_facts(after: list[dict[str, Any]]) -> list[ChangeFact]:
    """Facts for a plan's ``after`` RRsets (``{"name", "type", "rrset": {...} | None}``)."""
    facts = []
    for item in after:
        name = str(item["name"]).rstrip(".")
        predicate = f"HAS_{item['type']}"
        rrset = item["rrset"]
        if rrset is None:
            facts.append(ChangeFact(name, predicate, ended=True))
            continue
        values = ", ".join(sorted(str(v) for v in rrset["values"]))
        facts.append(
            ChangeFact(
                name, predicate, value=values, subject_type="dns-name", note=f"TTL {rrset['ttl']}"
            )
        )
    return facts
