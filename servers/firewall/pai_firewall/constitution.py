"""The constitution: invariants every resulting ruleset must satisfy, and the self-check probes.

A YAML file (``PAI_FIREWALL_CONSTITUTION``), read once at start and never changeable through
MCP::

    invariants:
      - name: ssh-from-management            # TCP 22 from 10.0.0.0/8 must stay accepted
        must_accept: {chain: input, protocol: tcp, dport: 22, saddr: 10.0.0.0/8}
      - name: no-postgres                    # nothing may accept 5432 from anywhere
        must_not_accept: {chain: input, protocol: tcp, dport: 5432}
      - name: rule-budget
        max_rules: 200
      - name: annotated                      # every rule has a comment and an owner
        require: [comment, owner]
      - name: model-rules-expire             # rules of these owners expire within 30 days
        max_lifetime_days: 30
        owners: [model]
    probes:                                  # self-check after every apply
      - name: ssh
        packet: {chain: input, protocol: tcp, dport: 22, saddr: 10.1.2.3}
        command: [nc, -z, -w, "2", 10.0.0.1, "22"]   # optional: tested for real (exit 0)
        timeout_s: 5

``must_accept`` and ``must_not_accept`` are evaluated on the resulting ruleset by the packet
evaluator over the whole packet class (every address of a CIDR), never by reading rule text.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pai_firewall.evaluate import PacketSpec, Piece, interfaces, pieces
from pai_firewall.rules import Ruleset

__all__ = [
    "Constitution",
    "ConstitutionError",
    "Invariant",
    "Probe",
    "ProbeResult",
    "Verdict",
    "describe",
]

KINDS = ("must_accept", "must_not_accept", "max_rules", "require", "max_lifetime_days")


class ConstitutionError(Exception):
    """The constitution is missing or broken: every change is refused."""


class Invariant(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1, max_length=64)
    description: str = ""
    must_accept: PacketSpec | None = None
    must_not_accept: PacketSpec | None = None
    max_rules: int | None = Field(None, ge=0)
    require: list[Literal["comment", "owner", "expiry"]] | None = None
    max_lifetime_days: float | None = Field(None, gt=0)
    owners: list[str] = Field(
        default_factory=list, description="max_lifetime_days: only these owners (empty: all)."
    )

    @model_validator(mode="after")
    def _one_kind(self) -> Invariant:
        kinds = [k for k in KINDS if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(
                f"invariant {self.name!r} needs exactly one of "
                f"{', '.join(KINDS)} (has {', '.join(kinds) or 'none'})"
            )
        return self

    @property
    def kind(self) -> str:
        return str(next(k for k in KINDS if getattr(self, k) is not None))


class Probe(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1, max_length=64)
    packet: PacketSpec
    command: list[str] | None = Field(None, min_length=1)
    timeout_s: float = Field(5.0, gt=0, le=60)


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")
    invariants: list[Invariant] = Field(default_factory=list)
    probes: list[Probe] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Verdict:
    name: str
    kind: str
    ok: bool
    detail: str
    witness: dict[str, object] | None = None
    rule_id: str | None = None


@dataclass(frozen=True, slots=True)
class ProbeResult:
    name: str
    ok: bool
    evaluated: bool
    tested: bool | None  # None: no command configured
    detail: str


def describe(piece: Piece, chain: str) -> str:
    """Which rule (or policy) decides a piece, in words."""
    if piece.rule is None:
        return f"the {chain} chain policy ({piece.verdict})"
    return f"rule {piece.rule.id} (#{piece.position} in {chain}: {piece.rule.summary()})"


def _where(piece: Piece, names: list[str]) -> str:
    ex = piece.example(names)
    return f"{ex['protocol']} {ex['saddr']}:{ex['sport']} -> {ex['daddr']}:{ex['dport']} ({ex['state']})"


def check_accepted(ruleset: Ruleset, spec: PacketSpec, name: str, kind: str) -> Verdict:
    """``spec`` is accepted in every part (must_accept, probes)."""
    for piece in pieces(ruleset, spec):
        if piece.verdict != "accept":
            names = interfaces(ruleset, spec)
            return Verdict(
                name,
                kind,
                False,
                f"{_where(piece, names)} would be {piece.verdict}ped by "
                f"{describe(piece, spec.chain)}".replace("rejectped", "rejected"),
                piece.example(names),
                piece.rule.id if piece.rule else None,
            )
    return Verdict(name, kind, True, f"every packet of the class is accepted in {spec.chain}")


def _check_not_accepted(ruleset: Ruleset, spec: PacketSpec, name: str) -> Verdict:
    for piece in pieces(ruleset, spec):
        if piece.verdict == "accept":
            names = interfaces(ruleset, spec)
            return Verdict(
                name,
                "must_not_accept",
                False,
                f"{_where(piece, names)} would be accepted by {describe(piece, spec.chain)}",
                piece.example(names),
                piece.rule.id if piece.rule else None,
            )
    return Verdict(name, "must_not_accept", True, "no packet of the class is accepted")


@dataclass(frozen=True, slots=True)
class Constitution:
    invariants: tuple[Invariant, ...]
    probes: tuple[Probe, ...]
    source: str

    @classmethod
    def load(cls, path: Path | None) -> Constitution:
        """Read and validate the file; any problem is a :class:`ConstitutionError`."""
        import yaml

        if path is None:
            raise ConstitutionError("no constitution configured (set PAI_FIREWALL_CONSTITUTION)")
        try:
            data = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise ConstitutionError(f"constitution {path} does not exist") from None
        except (OSError, yaml.YAMLError) as exc:
            raise ConstitutionError(f"constitution {path} cannot be read: {exc}") from None
        if not isinstance(data, dict):
            raise ConstitutionError(f"constitution {path} must be a mapping with 'invariants'")
        try:
            parsed = _File.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            raise ConstitutionError(f"constitution {path} is invalid: {problems}") from None
        if not parsed.invariants:
            raise ConstitutionError(f"constitution {path} has no invariants")
        names = [i.name for i in parsed.invariants]
        if len(set(names)) != len(names):
            raise ConstitutionError(f"constitution {path} repeats an invariant name")
        return cls(tuple(parsed.invariants), tuple(parsed.probes), str(path))

    def check(self, ruleset: Ruleset, now: float | None = None) -> list[Verdict]:
        """One verdict per invariant on the resulting ruleset."""
        now = time.time() if now is None else now
        return [self._one(inv, ruleset, now) for inv in self.invariants]

    def _one(self, inv: Invariant, ruleset: Ruleset, now: float) -> Verdict:
        rules = ruleset.rules()
        if inv.must_accept is not None:
            return check_accepted(ruleset, inv.must_accept, inv.name, "must_accept")
        if inv.must_not_accept is not None:
            return _check_not_accepted(ruleset, inv.must_not_accept, inv.name)
        if inv.max_rules is not None:
            ok = len(rules) <= inv.max_rules
            return Verdict(
                inv.name, "max_rules", ok, f"{len(rules)} rules (at most {inv.max_rules})"
            )
        if inv.require is not None:
            for r in rules:
                missing = [
                    f
                    for f in inv.require
                    if (f == "comment" and not r.comment)
                    or (f == "owner" and not r.owner)
                    or (f == "expiry" and r.expires_at is None)
                ]
                if missing:
                    return Verdict(
                        inv.name,
                        "require",
                        False,
                        f"rule {r.id} ({r.summary()}) has no {' and no '.join(missing)}",
                        rule_id=r.id,
                    )
            return Verdict(inv.name, "require", True, f"every rule has {', '.join(inv.require)}")
        assert inv.max_lifetime_days is not None
        limit = now + inv.max_lifetime_days * 86400
        for r in rules:
            if inv.owners and r.owner not in inv.owners:
                continue
            if r.expires_at is None or r.expires_at > limit + 1:
                when = "never expires" if r.expires_at is None else "expires later"
                return Verdict(
                    inv.name,
                    "max_lifetime_days",
                    False,
                    f"rule {r.id} of owner {r.owner} {when} than {inv.max_lifetime_days:g} "
                    "days from now: set expires_in_days",
                    rule_id=r.id,
                )
        return Verdict(
            inv.name,
            "max_lifetime_days",
            True,
            f"every rule{' of ' + ', '.join(inv.owners) if inv.owners else ''} expires within "
            f"{inv.max_lifetime_days:g} days",
        )

    def self_check(self, live: Ruleset) -> list[ProbeResult]:
        """Each probe evaluated on the live ruleset, and run for real where it has a command.

        Without probes, every ``must_accept`` invariant is evaluated on the live ruleset."""
        probes = list(self.probes) or [
            Probe(name=i.name, packet=i.must_accept) for i in self.invariants if i.must_accept
        ]
        return [_run_probe(p, live) for p in probes]


def _run_probe(probe: Probe, live: Ruleset) -> ProbeResult:
    verdict = check_accepted(live, probe.packet, probe.name, "probe")
    if not verdict.ok:
        return ProbeResult(probe.name, False, False, None, verdict.detail)
    if probe.command is None:
        return ProbeResult(probe.name, True, True, None, "accepted by the live ruleset")
    try:
        proc = subprocess.run(
            probe.command, capture_output=True, text=True, timeout=probe.timeout_s
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return ProbeResult(
            probe.name, False, True, False, f"probe command failed: {type(exc).__name__}"
        )
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip()[-200:]
        return ProbeResult(
            probe.name, False, True, False, f"probe command exited {proc.returncode}: {tail}"
        )
    return ProbeResult(probe.name, True, True, True, "accepted by the live ruleset and tested")
