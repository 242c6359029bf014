"""Policy checks on a plan, before anything is sent. Each refusal names its rule.

Rules: ``zone-allowlist``, ``protected-record`` (apex SOA and NS always; MX and SPF TXT at the
apex unless allowed), ``ttl-bounds``, ``cname-exclusive`` (no CNAME beside other data, none at
the apex), ``change-share`` (a plan may update or delete at most a share of the zone's existing RRsets unless
``force`` is given, octodns-style; the override is recorded).
"""

from __future__ import annotations

from dataclasses import dataclass

from pai_core.errors import PolicyDenied
from pai_dns.records import Change, RRset

__all__ = ["Finding", "Policy"]


@dataclass(frozen=True, slots=True)
class Finding:
    """A policy note kept on the plan (a refusal raises instead)."""

    rule: str
    message: str


@dataclass(frozen=True, slots=True)
class Policy:
    zones: tuple[str, ...]
    min_ttl: int = 60
    max_ttl: int = 86400
    allow_apex_mail_records: bool = False
    max_change_share: float = 0.3
    min_records_for_share: int = 10

    def check_zone(self, zone: str) -> str:
        canon = zone.lower().rstrip(".") + "."
        if canon not in {z.lower().rstrip(".") + "." for z in self.zones}:
            raise PolicyDenied(
                f"zone {canon} is not managed here",
                rule="zone-allowlist",
                hint=f"Managed zones: {', '.join(self.zones) or 'none (set PAI_DNS_ZONES)'}.",
            )
        return canon

    def check(
        self,
        zone: str,
        changes: list[Change],
        current: dict[tuple[str, str], RRset],
        after: dict[tuple[str, str], RRset | None],
        *,
        force: bool,
        zone_size_known: bool = True,
    ) -> list[Finding]:
        findings: list[Finding] = []
        for ch in changes:
            self._protected(zone, ch)
            if ch.ttl is not None and not self.min_ttl <= ch.ttl <= self.max_ttl:
                raise PolicyDenied(
                    f"TTL {ch.ttl} of {ch.name} {ch.rtype} is outside {self.min_ttl}..{self.max_ttl}",
                    rule="ttl-bounds",
                )
        self._cname_exclusive(zone, current, after)
        if not zone_size_known:
            findings.append(
                Finding(
                    "change-share",
                    "the zone could not be transferred, so the "
                    "share of the zone this plan changes was not checked",
                )
            )
            return findings
        # Like octodns, the limit is on existing RRsets updated or deleted; creations are free.
        total = len(current)
        changed = sum(1 for key, rr in after.items() if key in current and current[key] != rr)
        if total >= self.min_records_for_share and changed / total > self.max_change_share:
            msg = (
                f"plan updates or deletes {changed} of {total} existing RRsets "
                f"({changed / total:.0%}), above the {self.max_change_share:.0%} limit"
            )
            if not force:
                raise PolicyDenied(
                    msg, rule="change-share", hint="Split the plan, or plan again with force=true."
                )
            findings.append(Finding("change-share", msg + "; allowed by force"))
        return findings

    def _protected(self, zone: str, ch: Change) -> None:
        if ch.name != zone:
            return
        if ch.rtype in ("SOA", "NS"):
            raise PolicyDenied(
                f"{ch.rtype} at the apex of {zone} is protected", rule="protected-record"
            )
        if self.allow_apex_mail_records:
            return
        is_spf = ch.rtype == "TXT" and any("v=spf1" in v.lower() for v in ch.values)
        if (
            ch.rtype == "MX"
            or is_spf
            or (ch.rtype == "TXT" and ch.action == "delete" and not ch.values)
        ):
            raise PolicyDenied(
                f"{ch.rtype} at the apex of {zone} is protected (mail delivery)",
                rule="protected-record",
                hint="Set PAI_DNS_ALLOW_APEX_MAIL_RECORDS=true to allow it.",
            )

    @staticmethod
    def _cname_exclusive(
        zone: str, current: dict[tuple[str, str], RRset], after: dict[tuple[str, str], RRset | None]
    ) -> None:
        final: dict[tuple[str, str], RRset | None] = {**current, **after}
        touched = {n for (n, _t) in after}
        names_with_cname = {
            n for (n, t), rr in final.items() if t == "CNAME" and rr is not None and n in touched
        }
        for name in sorted(names_with_cname):
            if name == zone:
                raise PolicyDenied(
                    f"a CNAME at the apex {zone} is not allowed", rule="cname-exclusive"
                )
            others = [t for (n, t), rr in final.items() if n == name and t != "CNAME" and rr]
            if others:
                raise PolicyDenied(
                    f"{name} would have a CNAME beside {', '.join(sorted(others))}",
                    rule="cname-exclusive",
                    hint="A name with a CNAME can have no other data: remove one of them.",
                )
