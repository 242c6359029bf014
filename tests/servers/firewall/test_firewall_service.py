"""The firewall service against real nftables, each test in network namespaces of its own."""

from __future__ import annotations

import json
import os
import signal
import stat
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from pai_core.errors import BackendUnavailable, Conflict, NotFound, PolicyDenied, VerificationFailed
from pai_core.memory import open_memory
from pai_firewall.backend import NftRunner
from pai_firewall.deadman import guard_alive, read_pending, recover
from pai_firewall.evaluate import PacketSpec
from pai_firewall.models import ChangeIn
from pai_firewall.parse import parse_table
from pai_firewall.render import render_table
from pai_firewall.rules import Rule, Ruleset, TableRef
from pai_firewall.server import build_service
from pai_firewall.service import FirewallService
from tests.servers.firewall.conftest import (
    NO_POSTGRES,
    Veth,
    finish_guards,
    nft,
    settings_for,
    wait_until,
)


def rule(**fields: Any) -> dict[str, Any]:
    return {"comment": "test rule", "expires_in_days": 7, **fields}


def add(position: int | None = None, **fields: Any) -> ChangeIn:
    return ChangeIn(op="add", rule=rule(**fields), position=position)  # type: ignore[arg-type]


def applied(svc: FirewallService, changes: list[ChangeIn], window: int = 60) -> str:
    plan = svc.plan(changes)
    assert plan.allowed, plan.verdicts
    result = svc.apply(plan.plan_id, window)
    assert result.status == "pending-confirmation" and all(c.ok for c in result.checks)
    return result.change_id


def live(ns: str) -> Ruleset:
    return parse_table(nft(ns, "-j", "list", "table", "inet", "pai").stdout)


def test_rendered_rules_read_back_identical_from_the_kernel(netns: str) -> None:
    rs = Ruleset(exists=True)
    rs.chains["input"].rules += [
        Rule(id="0000000a", chain="input", protocol="tcp", saddr=["10.0.0.0/8"], dport=[22],
             action="accept", comment="ssh: management", owner="ops"),
        Rule(id="0000000b", chain="input", protocol="tcp", in_interface="eth0",
             saddr=["192.0.2.0/25", "192.0.2.7", "192.0.2.128/25"], dport=[80, 443, "1000-2000"],
             state=["new", "established"], action="drop", expires_at=1999999999),
        Rule(id="0000000c", chain="input", protocol="icmpv6", action="reject"),
        Rule(id="0000000d", chain="input", protocol="udp", daddr=["2001:db8::/32"], sport=[53],
             action="accept"),
        Rule(id="0000000e", chain="input", state=["invalid"], action="drop"),
    ]  # fmt: skip
    rs.chains["output"].rules.append(
        Rule(id="0000000f", chain="output", out_interface="veth1", protocol="icmp", action="accept")
    )
    rs.chains["forward"].policy = "drop"
    runner = NftRunner(netns=netns)
    runner.apply(render_table(TableRef(), rs))
    back = parse_table(runner.list_table())
    assert back.foreign == []
    assert back.checksum() == rs.checksum()
    assert back.chains["input"].rules[1].saddr == ["192.0.2.0/24"]  # one spelling of a set
    runner.apply(render_table(TableRef(), Ruleset.empty()))
    assert runner.list_table() == ""


def test_plan_apply_confirm_lists_audits_and_remembers(service: FirewallService) -> None:
    ns = service.runner.netns
    assert ns is not None
    assert not service.list_rules().exists
    plan = service.plan(
        [
            add(chain="input", protocol="tcp", dport=[22], saddr=["10.0.0.0/8"],
                action="accept", owner="ops", comment="ssh from management"),
            add(chain="input", protocol="tcp", dport=[80, 443], action="accept", comment="web"),
            ChangeIn(op="set_policy", chain="input", policy="drop"),
        ]
    )  # fmt: skip
    assert plan.allowed and all(v.ok for v in plan.verdicts)
    assert {d.op for d in plan.diff} == {"add", "set_policy"}
    assert nft(ns, "list", "table", "inet", "pai").returncode != 0  # nothing applied yet
    applied_ = service.apply(plan.plan_id, 60)
    assert [c.name for c in applied_.checks][0] == "live table as planned"
    page = service.list_rules()
    assert page.pending and page.pending.change_id == applied_.change_id
    assert page.policies["input"] == "drop" and [r.text for r in page.rules] == [
        "tcp saddr 10.0.0.0/8 dport 22 accept",
        "tcp dport 80,443 accept",
    ]
    confirmed = service.confirm(applied_.change_id)
    assert confirmed.memory.remembered and confirmed.memory.facts >= 4
    assert service.list_rules().pending is None
    assert read_pending(service.data_dir) is None
    rule_id = page.rules[0].id
    facts = open_memory(service.recorder.memory).graph.get_entity(f"firewall rule {rule_id}")  # type: ignore[attr-defined]
    assert facts is not None
    values = {f.predicate: (f.value or f.object) for f in facts.outgoing}
    assert values["FIREWALL_RULE"].startswith("input: tcp saddr 10.0.0.0/8 dport 22 accept")
    assert confirmed.memory.source is not None
    assert all(f.source == confirmed.memory.source for f in facts.outgoing)
    actions = [(e.action, e.result) for e in reversed(service.history().entries)]
    assert actions == [
        ("plan", "allowed"),
        ("apply", "pending-confirmation"),
        ("confirm", "confirmed"),
    ]
    assert service.audit.verify().ok
    # Removing and modifying by id, then undoing that change with rollback(to).
    web = page.rules[1].id
    assert web is not None
    second = applied(
        service,
        [ChangeIn(op="modify", rule_id=web, rule=rule(chain="input", protocol="tcp", dport=[8443],  # type: ignore[arg-type]
                                                      action="accept", comment="web tls"))],
    )  # fmt: skip
    service.confirm(second)
    assert [r.text for r in service.list_rules().rules][1] == "tcp dport 8443 accept"
    undone = service.rollback(second)
    assert undone.verified and [d.op for d in undone.diff] == ["modify"]
    assert [r.text for r in service.list_rules().rules][1] == "tcp dport 80,443 accept"


def test_constitution_catches_indirect_blocks_and_forbidden_accepts(
    netns: str, tmp_path: Path, constitution_file: Path
) -> None:
    ns = netns
    strict = tmp_path / "strict.yaml"
    strict.write_text(constitution_file.read_text() + NO_POSTGRES)
    service = build_service(settings_for(ns, tmp_path, strict))
    # Under a default-accept policy 5432 is accepted: the baseline itself must drop by default.
    open_policy = service.plan([add(chain="input", protocol="udp", action="drop")])
    assert [v.invariant for v in open_policy.verdicts if not v.ok] == ["no-postgres"]
    applied_id = applied(
        service,
        [add(chain="input", protocol="tcp", dport=[22], saddr=["10.0.0.0/8"], action="accept",
             owner="ops", comment="ssh"),
         ChangeIn(op="set_policy", chain="input", policy="drop")],
    )  # fmt: skip
    service.confirm(applied_id)
    before = live(ns).checksum()
    # A broad drop placed above the allow blocks SSH from part of 10/8 without naming port 22.
    broad = service.plan([add(position=0, chain="input", saddr=["10.9.0.0/16"], action="drop")])
    ssh = next(v for v in broad.verdicts if v.invariant == "ssh-from-management")
    assert not broad.allowed and not ssh.ok
    assert ssh.rule_id == broad.diff[0].rule_id and "10.9.0.0" in ssh.detail
    # A drop policy with no allow for part of the management range.
    narrowed = service.plan(
        [
            ChangeIn(op="modify", rule_id=service.list_rules().rules[0].id,
                     rule=rule(chain="input", protocol="tcp", dport=[22], saddr=["10.0.0.0/9"],  # type: ignore[arg-type]
                               action="accept", owner="ops")),
        ]
    )  # fmt: skip
    ssh = next(v for v in narrowed.verdicts if v.invariant == "ssh-from-management")
    assert not ssh.ok and "policy" in ssh.detail and ssh.witness
    assert ssh.witness["saddr"] == "10.128.0.0"
    # An accept of every TCP port accepts 5432 too.
    wide = service.plan([add(chain="input", protocol="tcp", dport=["1-65535"], action="accept")])
    pg = next(v for v in wide.verdicts if v.invariant == "no-postgres")
    assert not pg.ok and pg.witness and pg.witness["dport"] == 5432
    # Metadata invariants: no comment; a model rule that never expires.
    bare = service.plan([ChangeIn(op="add", rule={"chain": "input", "action": "drop",  # type: ignore[arg-type]
                                                  "protocol": "udp", "expires_in_days": 1})])  # fmt: skip
    assert [v.invariant for v in bare.verdicts if not v.ok] == ["annotated"]
    forever = service.plan([ChangeIn(op="add", rule={"chain": "input", "action": "drop",  # type: ignore[arg-type]
                                                     "protocol": "udp", "comment": "x"})])  # fmt: skip
    assert [v.invariant for v in forever.verdicts if not v.ok] == ["model-rules-expire"]
    reopened = service.plan([ChangeIn(op="set_policy", chain="input", policy="accept")])
    assert [v.invariant for v in reopened.verdicts if not v.ok] == ["no-postgres"]
    for refused in (broad, narrowed, wide, bare, forever, reopened):
        with pytest.raises(PolicyDenied, match="breaks the constitution"):
            service.apply(refused.plan_id, 5)
    assert live(ns).checksum() == before and read_pending(service.data_dir) is None
    finish_guards(service.data_dir)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"saddr": ["10.0.0.0/33"]}, "not a valid address or CIDR"),
        ({"saddr": ["10.0.0.1/8"]}, "has host bits set"),
        ({"protocol": "tcp", "dport": [70000]}, "port 70000 is out of range"),
        ({"chain": "prerouting"}, "unknown chain 'prerouting'"),
        ({"comment": 'ok" ; flush ruleset ; "'}, "comment contains"),
        ({"comment": "x } chain evil { type filter hook input priority 0"}, "comment contains"),
        ({"dport": [22]}, "ports need protocol tcp or udp"),
        ({"saddr": ["10.0.0.0/8"], "daddr": ["2001:db8::/32"]}, "mixes IPv4 and IPv6"),
        ({"in_interface": "eth0; drop"}, "interface"),
    ],
)
def test_bad_rules_are_refused_with_the_reason(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ChangeIn.model_validate(
            {"op": "add", "rule": {"chain": "input", "action": "accept", **fields}}
        )


def test_bad_changes_change_nothing(service: FirewallService) -> None:
    ns = service.runner.netns
    assert ns is not None
    with pytest.raises(NotFound, match="no rule 0badc0de"):
        service.plan([ChangeIn(op="remove", rule_id="0badc0de")])
    with pytest.raises(ValidationError, match="unknown chain"):
        PacketSpec(chain="nat")
    with pytest.raises(Exception, match="unknown chain 'nat'"):
        service.plan([ChangeIn(op="set_policy", chain="nat", policy="drop")])
    with pytest.raises(Exception, match="past the end"):
        service.plan([add(position=3, chain="input", action="drop")])
    with pytest.raises(NotFound):
        service.apply("0123456789abcdef", 5)
    assert nft(ns, "list", "table", "inet", "pai").returncode != 0


def test_missing_or_broken_constitution_refuses_every_change(netns: str, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("invariants:\n  - name: x\n    must_accept: {chain: nat}\n")
    for path, reason in ((None, "no constitution configured"), (broken, "unknown chain")):
        svc = build_service(settings_for(netns, tmp_path, path))
        with pytest.raises(PolicyDenied, match=reason):
            svc.plan([add(chain="input", action="drop")])
        assert svc.list_rules().total == 0  # reading still works


def test_a_batch_the_kernel_rejects_leaves_the_table_unchanged(
    service: FirewallService, tmp_path: Path
) -> None:
    ns = service.runner.netns
    assert ns is not None
    first = applied(service, [add(chain="input", protocol="udp", action="drop", comment="one")])
    service.confirm(first)
    before = live(ns).checksum()
    # An nft that passes `nft -c` but appends a command the kernel rejects to the real batch.
    wrapper = tmp_path / "nft-flaky"
    wrapper.write_text(
        "#!/bin/sh\n"
        'case " $* " in *" -c "*) exec nft "$@";; esac\n'
        '{ cat; echo "delete rule inet pai input handle 999999"; } | exec nft "$@"\n'
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    flaky = FirewallService(**service.__dict__)
    flaky.runner = NftRunner(netns=ns, nft=str(wrapper))
    plan = flaky.plan([add(chain="input", protocol="tcp", dport=[9], action="drop", comment="two")])
    with pytest.raises(BackendUnavailable, match="the kernel rejected the batch") as err:
        flaky.apply(plan.plan_id, 5)
    assert "unchanged (verified)" in str(err.value)
    assert live(ns).checksum() == before and read_pending(service.data_dir) is None
    # A plan whose table changed underneath it is refused, nothing applied.
    stale = service.plan([add(chain="input", protocol="tcp", dport=[10], action="drop")])
    nft(ns, "add", "rule", "inet", "pai", "output", "counter")
    with pytest.raises(Conflict, match="changed since plan"):
        service.apply(stale.plan_id, 5)
    with pytest.raises(Conflict, match="did not write"):
        service.plan([add(chain="input", protocol="tcp", dport=[11], action="drop")])


def test_dead_man_timer_rolls_back_an_unconfirmed_change(service: FirewallService) -> None:
    ns = service.runner.netns
    assert ns is not None
    before = live(ns).checksum()
    change = applied(service, [add(chain="input", protocol="tcp", dport=[8080], action="drop")], 1)
    assert live(ns).rules()[0].dport == [8080]
    wait_until(lambda: read_pending(service.data_dir) is None, what="the dead-man rollback")
    assert live(ns).checksum() == before
    entries = service.history().entries
    assert (entries[0].action, entries[0].result, entries[0].change_id) == (
        "rollback", "rolled_back", change,
    )  # fmt: skip
    assert entries[0].detail == "not confirmed in time"
    with pytest.raises(Conflict, match="rolled back"):
        service.confirm(change)


def test_restart_during_a_pending_confirmation(
    service: FirewallService, netns: str, tmp_path: Path, constitution_file: Path
) -> None:
    before = live(netns).checksum()
    change = applied(service, [add(chain="input", protocol="tcp", dport=[81], action="drop")], 3)
    guard = read_pending(service.data_dir)["guard_pid"]  # type: ignore[index]
    os.kill(guard, signal.SIGKILL)  # the server and its guard both gone
    wait_until(lambda: not guard_alive(guard), what="the guard to die")
    restarted = build_service(settings_for(netns, tmp_path, constitution_file))
    assert recover(restarted.data_dir) == f"change {change} is pending; started a new guard"
    assert restarted.list_rules().pending is not None
    restarted.confirm(change)
    assert live(netns).rules()[0].dport == [81]
    # Expired while nothing was running: the next start rolls it back.
    second = applied(restarted, [add(chain="input", protocol="tcp", dport=[82], action="drop")], 1)
    pending = read_pending(restarted.data_dir)
    assert pending is not None
    os.kill(pending["guard_pid"], signal.SIGKILL)
    wait_until(lambda: time.time() > pending["deadline"], what="the deadline")
    assert recover(restarted.data_dir) == (
        f"rolled back expired change {second}: rolled_back"
    )  # fmt: skip
    rules = live(netns).rules()
    assert [r.dport for r in rules] == [[81]] and live(netns).checksum() != before
    reasons = [e["reason"] for e in restarted.audit.entries() if e["action"] == "firewall.rollback"]
    assert reasons == ["expired, found at start-up"]


def test_explain_names_the_deciding_rule(service: FirewallService) -> None:
    service.confirm(
        applied(
            service,
            [
                add(chain="input", protocol="tcp", dport=[22], saddr=["10.0.0.0/8"],
                    action="accept", owner="ops"),
                add(chain="input", protocol="tcp", saddr=["192.0.2.0/24"], action="reject"),
                ChangeIn(op="set_policy", chain="input", policy="drop"),
            ],
        )
    )  # fmt: skip
    one = service.explain(PacketSpec(protocol="tcp", saddr="10.1.2.3", dport=22))
    assert one.verdict == "accept" and one.outcomes[0].rule is not None
    assert one.outcomes[0].rule.position == 0 and "first rule" in one.outcomes[0].why
    other = service.explain(PacketSpec(protocol="tcp", saddr="192.0.2.9", dport=22))
    assert other.verdict == "reject" and other.outcomes[0].rule.position == 1  # type: ignore[union-attr]
    nobody = service.explain(PacketSpec(protocol="udp", saddr="203.0.113.5", dport=53))
    assert nobody.verdict == "drop" and nobody.outcomes[0].decided_by == "policy"
    mixed = service.explain(PacketSpec(protocol="tcp", saddr="0.0.0.0/0", dport=22))
    assert mixed.verdict == "depends" and {o.verdict for o in mixed.outcomes} == {
        "accept", "reject", "drop",
    }  # fmt: skip


def test_a_rule_really_drops_then_really_allows_tcp_over_veth(veth: Veth, tmp_path: Path) -> None:
    constitution = tmp_path / "veth.yaml"
    constitution.write_text(
        "invariants:\n"
        "  - name: management\n"
        f"    must_accept: {{chain: input, protocol: tcp, dport: 2222, saddr: 198.51.100.0/24}}\n"
        "probes:\n"
        "  - name: management-port\n"
        "    packet: {chain: input, protocol: tcp, dport: 2222, saddr: 198.51.100.2}\n"
        f"    command: {json.dumps(veth.probe_command(2222))}\n"
    )
    svc = build_service(settings_for(veth.server_ns, tmp_path, constitution))
    try:
        assert veth.connects(8080) and veth.connects(2222)
        drop = svc.plan([add(chain="input", protocol="tcp", dport=[8080], action="drop")])
        result = svc.apply(drop.plan_id, 30)
        probe = next(c for c in result.checks if c.name == "probe management-port")
        assert probe.ok and "tested" in probe.detail
        svc.confirm(result.change_id)
        assert not veth.connects(8080)  # really dropped
        assert veth.connects(2222)
        rule_id = svc.list_rules().rules[0].id
        allow = svc.plan([ChangeIn(op="remove", rule_id=rule_id)])
        svc.confirm(svc.apply(allow.plan_id, 30).change_id)
        assert veth.connects(8080)  # really allowed again
        # Another table drops the management port: the probe fails for real, the change is undone.
        other = "table inet other {\n chain input {\n type filter hook input priority -10\n"
        other += " tcp dport 2222 drop\n }\n}\n"
        assert nft(veth.server_ns, "-f", "-", stdin=other).returncode == 0
        assert not veth.connects(2222)
        before = live(veth.server_ns).checksum()
        harmless = svc.plan([add(chain="input", protocol="udp", dport=[9], action="drop")])
        with pytest.raises(VerificationFailed, match="probe command exited") as err:
            svc.apply(harmless.plan_id, 30)
        assert "previous table was restored (rolled_back)" in str(err.value)
        assert live(veth.server_ns).checksum() == before
        assert nft(veth.server_ns, "list", "table", "inet", "other").returncode == 0  # untouched
    finally:
        finish_guards(svc.data_dir)
