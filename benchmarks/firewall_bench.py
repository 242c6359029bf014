"""Firewall: plan + constitution check at 10, 100 and 1,000 rules; apply + self-check latency
against a bare `nft -f` of the same table; `explain` at 1,000 rules; how long after the
dead-man deadline the rollback has restored the table. Real nftables in a network namespace
created for the run (needs root)."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

CONSTITUTION = """
invariants:
  - name: ssh-from-management
    must_accept: {chain: input, protocol: tcp, dport: 22, saddr: 10.0.0.0/8}
  - name: no-postgres
    must_not_accept: {chain: input, protocol: tcp, dport: 5432}
  - name: rule-budget
    max_rules: 5000
  - name: annotated
    require: [comment, owner]
  - name: model-rules-expire
    max_lifetime_days: 30
    owners: [model]
"""


def _ms(values: list[float]) -> float:
    return round(statistics.median(values) * 1000, 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0 or shutil.which("nft") is None:
        print("firewall benchmark skipped: needs root and nftables (apt-get install nftables)")
        return 0
    sizes = [10, 100] if args.quick else [10, 100, 1000]
    runs = 3 if args.quick else 7
    tmp = Path(tempfile.mkdtemp(prefix="pai-fw-bench-"))
    os.environ["PAI_HOME"] = str(tmp / "home")  # the memory this run records into
    ns = f"pai-fw-bench-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", ns], check=True)

    from pai_core.settings import load_settings
    from pai_firewall.deadman import read_pending
    from pai_firewall.evaluate import PacketSpec
    from pai_firewall.models import ChangeIn
    from pai_firewall.render import render_table
    from pai_firewall.rules import Rule, Ruleset
    from pai_firewall.server import build_service
    from pai_firewall.settings import FirewallSettings

    try:
        (tmp / "constitution.yaml").write_text(CONSTITUTION)
        settings = load_settings(
            FirewallSettings,
            tmp / "none.toml",
            netns=ns,
            constitution=tmp / "constitution.yaml",
            data_dir=tmp / "data",
            audit_log=tmp / "audit.jsonl",
        )
        svc = build_service(settings)

        def seed(n: int) -> Ruleset:
            rs = Ruleset(exists=True)
            rs.chains["input"].rules = [
                Rule(
                    id="0000000a",
                    chain="input",
                    protocol="tcp",
                    dport=[22],
                    saddr=["10.0.0.0/8"],
                    action="accept",
                    comment="ssh",
                    owner="ops",
                )
            ] + [
                Rule(
                    id=f"{i:08x}",
                    chain="input",
                    protocol="tcp" if i % 3 else "udp",
                    dport=[10000 + i],
                    saddr=[f"203.0.{i // 250}.{i % 250}"],
                    action="accept" if i % 2 else "drop",
                    comment=f"service {i}",
                    owner="ops",
                )
                for i in range(1, n)
            ]
            rs.chains["input"].policy = "drop"
            svc.runner.apply(render_table(svc.table, rs))
            return rs

        change = ChangeIn.model_validate(
            {
                "op": "add",
                "position": 0,
                "rule": {
                    "chain": "input",
                    "protocol": "tcp",
                    "dport": [8080],
                    "action": "accept",
                    "comment": "web",
                    "expires_in_days": 7,
                },
            }
        )
        rows = []
        for n in sizes:
            rs = seed(n)
            plans, applies, raw = [], [], []
            for _ in range(runs):
                start = time.perf_counter()
                plan = svc.plan([change])
                plans.append(time.perf_counter() - start)
                assert plan.allowed, plan.verdicts
            for _ in range(max(3, runs // 2)):
                seed(n)
                plan = svc.plan([change])
                start = time.perf_counter()
                result = svc.apply(plan.plan_id, 60)
                applies.append(time.perf_counter() - start)
                assert all(c.ok for c in result.checks)
                svc.confirm(result.change_id)
                batch = render_table(svc.table, rs)
                start = time.perf_counter()
                svc.runner.apply(batch)
                raw.append(time.perf_counter() - start)
            rows.append(
                {
                    "rules": n,
                    "plan_ms": _ms(plans),
                    "apply_selfcheck_ms": _ms(applies),
                    "bare_nft_f_ms": _ms(raw),
                }
            )
        # explain at the largest size: a single packet and a whole /8.
        seed(sizes[-1])
        explains_one, explains_class = [], []
        for _ in range(runs):
            start = time.perf_counter()
            svc.explain(PacketSpec(protocol="tcp", saddr="203.0.3.7", dport=10757))
            explains_one.append(time.perf_counter() - start)
            start = time.perf_counter()
            svc.explain(PacketSpec(protocol="tcp", saddr="203.0.0.0/16"))
            explains_class.append(time.perf_counter() - start)
        # The dead-man timer: deadline → table restored, seen from outside (nft -j list).
        seed(100)
        late = []
        for _ in range(3):
            before = svc.read().checksum()
            plan = svc.plan([change])
            svc.apply(plan.plan_id, 1)
            pending = read_pending(svc.data_dir)
            assert pending is not None
            while svc.read().checksum() != before:
                time.sleep(0.01)
            late.append(time.time() - float(pending["deadline"]))
            while read_pending(svc.data_dir) is not None:
                time.sleep(0.01)
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
        shutil.rmtree(tmp, ignore_errors=True)
    result = {
        "benchmark": "firewall",
        "sizes": rows,
        "explain_packet_ms": _ms(explains_one),
        "explain_class_ms": _ms(explains_class),
        "explain_rules": sizes[-1],
        "rollback_after_deadline_ms": _ms(late),
        "rollback_after_deadline_max_ms": round(max(late) * 1000, 1),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
    }
    out = HERE / ("results/quick" if args.quick else "results")  # never over the record
    out.mkdir(parents=True, exist_ok=True)
    (out / "firewall.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "### Firewall: nftables in a network namespace (plan, apply, explain, rollback)",
        "",
        "| rules in table | plan + 5 invariants (ms) | apply + self-check (ms) | bare `nft -f` (ms) |",
        "|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['rules']} | {r['plan_ms']} | {r['apply_selfcheck_ms']} | {r['bare_nft_f_ms']} |"
        for r in rows
    ]
    lines += [
        "",
        f"`explain` at {sizes[-1]} rules: {result['explain_packet_ms']} ms for one packet, "
        f"{result['explain_class_ms']} ms for a /16 of sources over every port. The dead-man "
        f"rollback had restored the table {result['rollback_after_deadline_ms']} ms (median; max "
        f"{result['rollback_after_deadline_max_ms']} ms) after the deadline, seen from outside.",
        "apply + self-check = read the table, `nft -c`, arm the guard, one `nft -f`, read back, "
        "evaluate the probes; the bare `nft -f` is the same table with no checks. "
        f"Load average {result['load_average_1m']} on {result['cpus']} CPUs during the run.",
    ]
    (out / "firewall.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
