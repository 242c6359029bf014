"""Mail addresses as this server accepts them: RFC 5321/5322 dot-atom syntax, IDNA domains.

An address is normalised to lower case with its domain in ASCII (A-labels, via ``idna``), the
form Postfix maps and Dovecot's passwd-file use. Refused, each with a message naming the rule:
quoted local parts, non-ASCII local parts (SMTPUTF8), characters that are legal in RFC 5322
but unsafe in a passwd-file line or a mailbox path (``/``, ``%``), and lengths beyond RFC 5321
(local part 64 octets, domain 253, address 254).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pai_core.errors import InvalidInput

__all__ = ["Address", "parse_address", "parse_domain"]

# RFC 5322 atext, minus "/" (a path separator in mailbox homes) and "%" (Dovecot variables).
_ATEXT = r"[A-Za-z0-9!#$&'*+\-=?^_`{|}~]"
_DOT_ATOM = re.compile(rf"^{_ATEXT}+(\.{_ATEXT}+)*$")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


@dataclass(frozen=True, slots=True)
class Address:
    """A normalised address: ``local@domain`` in lower case, domain as A-labels."""

    local: str
    domain: str

    def __str__(self) -> str:
        return f"{self.local}@{self.domain}"


def parse_domain(text: str, *, field: str = "domain") -> str:
    """``text`` as an ASCII domain (IDNA 2008 A-labels, lower case), or InvalidInput."""
    import idna

    raw = text.strip().rstrip(".")
    if not raw:
        raise InvalidInput("the domain is empty", field=field)
    try:
        ascii_domain = idna.encode(raw, uts46=True).decode("ascii").lower()
    except idna.IDNAError as exc:
        raise InvalidInput(f"{text!r} is not a valid (IDNA) domain: {exc}", field=field) from exc
    labels = ascii_domain.split(".")
    if len(ascii_domain) > 253 or len(labels) < 2:
        raise InvalidInput(
            f"{text!r} is not a fully qualified domain (at least two labels, at most 253 octets)",
            field=field,
        )
    for label in labels:
        if not _LABEL.match(label):
            raise InvalidInput(
                f"label {label!r} of {text!r} is not a valid host name label", field=field
            )
    if labels[-1].isdigit():
        raise InvalidInput(f"{text!r} looks like an IP address, not a domain", field=field)
    return ascii_domain


def parse_address(text: str, *, field: str = "address") -> Address:
    """Validate and normalise ``text``; raise InvalidInput naming ``field`` and the rule."""
    value = text.strip()
    if value.startswith("<") and value.endswith(">"):
        value = value[1:-1]
    if any(c.isspace() for c in value) or not value:
        raise InvalidInput(f"{text!r} is not an address (empty or contains spaces)", field=field)
    local, sep, domain = value.rpartition("@")
    if not sep or not local or not domain:
        raise InvalidInput(f"{text!r} is not an address of the form local@domain", field=field)
    if local.startswith('"'):
        raise InvalidInput(
            f"{text!r} has a quoted local part, which this server does not provision",
            field=field,
            hint="Use a dot-atom local part (letters, digits, . _ - +); nothing was changed.",
        )
    if not local.isascii():
        raise InvalidInput(
            f"{text!r} has a non-ASCII local part (SMTPUTF8), which this server does not provision",
            field=field,
            hint="Use an ASCII local part; the domain may be internationalised.",
        )
    if "/" in local or "%" in local:
        raise InvalidInput(
            f"{text!r}: '/' and '%' are not allowed in a local part here (mailbox paths, "
            "Dovecot variables)",
            field=field,
        )
    if not _DOT_ATOM.match(local):
        raise InvalidInput(
            f"{text!r} has an invalid local part (RFC 5322 dot-atom: no leading, trailing or "
            "double dots, no special characters such as @ : ; , ( ) < > [ ] \\)",
            field=field,
        )
    if len(local.encode()) > 64:
        raise InvalidInput(f"the local part of {text!r} is longer than 64 octets", field=field)
    ascii_domain = parse_domain(domain, field=field)
    address = Address(local.lower(), ascii_domain)
    if len(str(address)) > 254:
        raise InvalidInput(f"{text!r} is longer than 254 octets", field=field)
    return address
