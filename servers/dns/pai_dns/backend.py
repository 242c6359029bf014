"""The DNS backend behind a small interface: read a zone, send one UPDATE, query a server.

:class:`Rfc2136Backend` speaks RFC 2136 dynamic UPDATE signed with TSIG (BIND, Knot, PowerDNS)
through dnspython. An API backend (PowerDNS API, Cloudflare) implements :class:`DnsBackend`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.resolver
import dns.tsig
import dns.tsigkeyring
import dns.update
import dns.xfr
import dns.zone

from pai_core.errors import BackendUnavailable, ConfigError, Conflict, PolicyDenied
from pai_dns.records import Change, RRset

__all__ = ["DnsBackend", "Endpoint", "QueryAnswer", "Rfc2136Backend", "TransferRefused"]


class TransferRefused(BackendUnavailable):
    """The primary does not allow a zone transfer for our key: read by targeted queries."""


log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """An authoritative server address: ``host`` (IP) and ``port``."""

    host: str
    port: int = 53

    def __str__(self) -> str:
        return f"{self.host}:{self.port}" if ":" not in self.host else f"[{self.host}]:{self.port}"

    @classmethod
    def parse(cls, text: str, default_port: int = 53) -> Endpoint:
        text = text.strip()
        if text.startswith("["):
            host, _, rest = text[1:].partition("]")
            return cls(host, int(rest.lstrip(":") or default_port))
        if text.count(":") == 1:
            host, port = text.split(":")
            return cls(host, int(port))
        return cls(text, default_port)


@dataclass(frozen=True, slots=True)
class QueryAnswer:
    """One server's answer for one RRset, plus its SOA serial for the zone."""

    endpoint: Endpoint
    rrset: RRset | None
    serial: int | None
    error: str | None = None


class DnsBackend(Protocol):
    """What the DNS service needs from a provider."""

    def read_zone(self, zone: str) -> dict[tuple[str, str], RRset]: ...

    def read_names(self, zone: str, names: set[str]) -> dict[tuple[str, str], RRset]: ...

    def apply(
        self, zone: str, changes: list[Change], expected: dict[tuple[str, str], RRset | None]
    ) -> None: ...

    def query(self, endpoint: Endpoint, zone: str, name: str, rtype: str) -> QueryAnswer: ...

    def authoritative(self, zone: str) -> list[Endpoint]: ...


def _rrsets_from_zone(z: dns.zone.Zone) -> dict[tuple[str, str], RRset]:
    out: dict[tuple[str, str], RRset] = {}
    for name, node in z.nodes.items():
        assert z.origin is not None
        fq = name.derelativize(z.origin).to_text().lower()
        for rds in node.rdatasets:
            rtype = dns.rdatatype.to_text(rds.rdtype)
            values = tuple(sorted(_text(rtype, r) for r in rds))
            out[(fq, rtype)] = RRset(fq, rtype, rds.ttl, values)
    return out


def _text(rtype: str, rdata: object) -> str:
    text = str(rdata.to_text())  # type: ignore[attr-defined]
    return text.lower() if rtype in ("CNAME", "NS", "PTR", "MX", "SRV") else text


class Rfc2136Backend:
    """RFC 2136 UPDATE + TSIG to one primary; AXFR (TSIG-signed) to read; direct queries."""

    def __init__(
        self,
        primary: Endpoint,
        *,
        key_name: str,
        secret: str,
        algorithm: str = "hmac-sha256",
        timeout: float = 5.0,
        extra_servers: Iterable[Endpoint] = (),
    ) -> None:
        self.primary = primary
        try:
            self.keyring = dns.tsigkeyring.from_text({key_name: secret})
        except Exception as exc:
            raise ConfigError(f"TSIG secret for key {key_name!r} is not valid base64") from exc
        self.key_name = dns.name.from_text(key_name)
        self.algorithm = dns.name.from_text(algorithm)
        self.timeout = timeout
        self.extra_servers = list(extra_servers)

    # ------------------------------------------------------------------ reading
    def read_zone(self, zone: str) -> dict[tuple[str, str], RRset]:
        try:
            z = dns.zone.Zone(zone, relativize=False)
            query, _serial = dns.xfr.make_query(
                z, keyring=self.keyring, keyname=self.key_name, keyalgorithm=self.algorithm
            )
            dns.query.inbound_xfr(
                self.primary.host, z, query, port=self.primary.port, lifetime=self.timeout * 2
            )
            return _rrsets_from_zone(z)
        except dns.xfr.TransferError as exc:
            raise TransferRefused(
                f"zone transfer of {zone} refused by {self.primary}: {exc}",
                hint="Allow AXFR for the TSIG key on the primary (Knot: acl action transfer; "
                "BIND: allow-transfer { key NAME; };).",
            ) from exc
        except (dns.tsig.PeerError, dns.tsig.BadSignature) as exc:
            # Knot answers a transfer its ACL does not allow for this key with BADKEY, so this
            # is a refusal of the transfer; a key that is really wrong fails at the UPDATE.
            raise TransferRefused(
                f"{self.primary} refused a zone transfer signed with our key "
                f"({type(exc).__name__})",
                hint="Allow AXFR for the key (or check the key): without it plans read only the "
                "names they touch.",
            ) from exc
        except (OSError, dns.exception.DNSException) as exc:
            raise BackendUnavailable(f"cannot read zone {zone} from {self.primary}: {exc}") from exc

    def read_names(self, zone: str, names: set[str]) -> dict[tuple[str, str], RRset]:
        """Every RRset of the supported types at ``names``, by direct queries to the primary."""
        from pai_dns.records import SUPPORTED_TYPES

        out: dict[tuple[str, str], RRset] = {}
        for name in sorted(names):
            for rtype in (*SUPPORTED_TYPES, "SOA"):
                answer = self.query(self.primary, zone, name, rtype)
                if answer.error:
                    raise BackendUnavailable(
                        f"cannot read {name} {rtype} from {self.primary}: {answer.error}"
                    )
                if answer.rrset is not None:
                    out[(name, rtype)] = answer.rrset
        return out

    def query(self, endpoint: Endpoint, zone: str, name: str, rtype: str) -> QueryAnswer:
        try:
            answer = self._ask(endpoint, name, rtype)
            soa = self._ask(endpoint, zone, "SOA")
        except (OSError, dns.exception.DNSException) as exc:
            return QueryAnswer(endpoint, None, None, error=f"{type(exc).__name__}: {exc}")
        serial = None
        for rrset in soa.answer:
            for rdata in rrset:
                serial = int(rdata.serial)
        if answer.rcode() not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            return QueryAnswer(endpoint, None, serial, error=dns.rcode.to_text(answer.rcode()))
        for rrset in answer.answer:
            if (
                dns.rdatatype.to_text(rrset.rdtype) == rtype
                and rrset.name.to_text().lower() == name
            ):
                values = tuple(sorted(_text(rtype, r) for r in rrset))
                return QueryAnswer(endpoint, RRset(name, rtype, rrset.ttl, values), serial)
        return QueryAnswer(endpoint, None, serial)

    def _ask(self, endpoint: Endpoint, name: str, rtype: str) -> dns.message.Message:
        q = dns.message.make_query(name, rtype)
        q.flags &= ~dns.flags.RD
        response, _ = dns.query.udp_with_fallback(
            q, endpoint.host, port=endpoint.port, timeout=self.timeout
        )
        return response

    def authoritative(self, zone: str) -> list[Endpoint]:
        """The primary, every NS of the zone that resolves to an address, and extras."""
        found: list[Endpoint] = [self.primary]
        try:
            ns = self._ask(self.primary, zone, "NS")
            hosts = [r.target.to_text() for rrset in ns.answer for r in rrset]
        except (OSError, dns.exception.DNSException):
            hosts = []
        for host in hosts:
            before = len(found)
            for rtype in ("A", "AAAA"):
                try:
                    reply = self._ask(self.primary, host, rtype)
                except (OSError, dns.exception.DNSException):
                    continue
                for rrset in reply.answer:
                    for rdata in rrset:
                        ep = Endpoint(rdata.address, self.primary.port)
                        if ep not in found:
                            found.append(ep)
            if len(found) == before and not dns.name.from_text(host).is_subdomain(
                dns.name.from_text(zone)
            ):
                # Out-of-zone name server: the primary holds no glue, ask the system resolver.
                try:
                    for rdata in dns.resolver.resolve(host, "A", lifetime=self.timeout):
                        ep = Endpoint(rdata.address, 53)
                        if ep not in found:
                            found.append(ep)
                except dns.exception.DNSException:
                    log.warning("name server %s of %s does not resolve", host, zone)
        for ep in self.extra_servers:
            if ep not in found:
                found.append(ep)
        return found

    # ------------------------------------------------------------------ writing
    def apply(
        self, zone: str, changes: list[Change], expected: dict[tuple[str, str], RRset | None]
    ) -> None:
        """One UPDATE: prerequisites that every touched RRset is as planned, then the changes."""
        upd = dns.update.UpdateMessage(
            zone, keyring=self.keyring, keyname=self.key_name, keyalgorithm=self.algorithm
        )
        for (name, rtype), before in expected.items():
            if before is None:
                upd.absent(name, rtype)
            else:
                # RFC 2136 2.4.2: a value-dependent prerequisite carries TTL 0.
                rds = dns.rdataset.from_text_list("IN", rtype, 0, list(before.values))
                upd.present(name, rds)
        for ch in changes:
            if ch.action in ("set", "add") and ch.ttl is None:
                raise ValueError(f"{ch.name} {ch.rtype}: {ch.action} needs the planned TTL")
            if ch.action == "set":
                upd.replace(ch.name, ch.ttl, ch.rtype, *ch.values)
            elif ch.action == "add":
                upd.add(ch.name, ch.ttl, ch.rtype, *ch.values)
            elif ch.values:
                upd.delete(ch.name, ch.rtype, *ch.values)
            else:
                upd.delete(ch.name, ch.rtype)
        try:
            response = dns.query.tcp(
                upd, self.primary.host, port=self.primary.port, timeout=self.timeout
            )
        except (dns.tsig.PeerError, dns.tsig.BadSignature) as exc:
            raise BackendUnavailable(
                f"{self.primary} rejected the TSIG signature of the UPDATE ({type(exc).__name__}); "
                "nothing was changed",
                hint="Check PAI_DNS_TSIG_KEY_NAME, _ALGORITHM and _SECRET against the server's key.",
            ) from exc
        except (OSError, dns.exception.DNSException) as exc:
            raise BackendUnavailable(f"UPDATE to {self.primary} failed: {exc}") from exc
        rcode = response.rcode()
        if rcode == dns.rcode.NOERROR:
            return
        text = dns.rcode.to_text(rcode)
        if rcode in (dns.rcode.NXRRSET, dns.rcode.YXRRSET, dns.rcode.NXDOMAIN, dns.rcode.YXDOMAIN):
            raise Conflict(
                f"the zone changed since the plan was made (server answered {text}); "
                "nothing was changed",
                hint="Make a new plan from the current records and apply that.",
            )
        if rcode in (dns.rcode.REFUSED, dns.rcode.NOTAUTH):
            raise PolicyDenied(
                f"{self.primary} refused the UPDATE ({text}); nothing was changed",
                rule="server-acl",
                hint="The server's ACL must allow updates signed with this TSIG key for the zone.",
            )
        raise BackendUnavailable(f"{self.primary} answered the UPDATE with {text}")
