"""The DNS server against real Knot and BIND: plan → policy → one UPDATE → verify."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from pai_core.audit import AuditLog
from pai_core.errors import ConfigError, Conflict, InvalidInput, NotFound, PolicyDenied
from pai_core.settings import load_settings
from pai_dns.server import build_service
from pai_dns.service import DnsService
from pai_dns.settings import DnsSettings
from tests.servers.dns.conftest import (
    ZONE,
    DnsServer,
    make_secret,
    query,
    query_ttl,
    send_update,
)


def service_for(server: DnsServer, tmp_path: Path, **overrides: object) -> DnsService:
    values: dict[str, object] = {
        "zones": ["example.test"],
        "server": "127.0.0.1",
        "port": server.port,
        "tsig_key_name": "pai-key",
        "tsig_secret": server.secret,
        "data_dir": tmp_path / "data",
        "audit_log": tmp_path / "audit.jsonl",
        "verify_timeout_s": 5,
    }
    settings = load_settings(DnsSettings, tmp_path / "none.toml", **{**values, **overrides})
    return build_service(settings)


CASES = {
    "A": ("api", ["192.0.2.10", "192.0.2.11"]),
    "AAAA": ("api6", ["2001:db8::10"]),
    "CNAME": ("docs", ["www.example.test."]),
    "MX": ("lists", ["10 mail.example.test."]),
    "TXT": ("_note", ['"hello world"', '"second"']),
    "SRV": ("_imaps._tcp", ["10 5 993 mail.example.test."]),
    "CAA": ("ca", ['0 issue "letsencrypt.org"']),
}


@pytest.mark.parametrize("rtype", list(CASES))
def test_plan_apply_verify_each_type(primary: DnsServer, tmp_path: Path, rtype: str) -> None:
    svc = service_for(primary, tmp_path)
    name, values = CASES[rtype]
    plan = svc.plan(
        "example.test",
        [{"action": "set", "name": name, "type": rtype, "ttl": 600, "values": values}],
    )
    [row] = plan["after"]
    assert plan["before"][0]["rrset"] is None and row["rrset"]["ttl"] == 600
    assert query(primary, f"{name}.example.test.", rtype) == []  # planning sends nothing
    result = svc.apply(plan["plan_id"])
    assert result["status"] == "applied" and result["verified"]
    assert [s["ok"] for s in result["verification"]["servers"]] == [True]
    got = query(primary, f"{name}.example.test.", rtype)
    assert len(got) == len(values)
    assert svc.verify_record("example.test", name, rtype, values, ttl=600)["ok"]
    entries = list(AuditLog(tmp_path / "audit.jsonl").entries())
    assert entries[-1]["result"] == "applied" and entries[-1]["plan_id"] == plan["plan_id"]
    assert AuditLog(tmp_path / "audit.jsonl").verify().ok


def test_one_plan_many_changes_is_one_update(knot: DnsServer, tmp_path: Path) -> None:
    svc = service_for(knot, tmp_path)
    before_serial = knot.serial()
    changes: list[dict[str, Any]] = [
        {"action": "set", "name": "www", "type": "A", "values": ["192.0.2.2"]},
        {"action": "add", "name": "api", "type": "A", "values": ["192.0.2.3"]},
        {"action": "delete", "name": "old", "type": "A"},
    ]
    plan = svc.plan("example.test", changes)
    result = svc.apply(plan["plan_id"])
    assert result["verified"]
    assert knot.serial() == (before_serial or 0) + 1  # one UPDATE, one serial bump
    assert query(knot, "www.example.test.", "A") == ["192.0.2.2"]
    assert query(knot, "old.example.test.", "A") == []


def test_concurrent_change_makes_apply_fail_with_nothing_changed(
    primary: DnsServer, tmp_path: Path
) -> None:
    svc = service_for(primary, tmp_path)
    plan = svc.plan(
        "example.test",
        [
            {"action": "set", "name": "www", "type": "A", "values": ["192.0.2.50"]},
            {"action": "set", "name": "new", "type": "A", "values": ["192.0.2.51"]},
        ],
    )
    assert send_update(primary, "www.example.test.", "A", ["192.0.2.77"]) == 0
    with pytest.raises(Conflict, match="changed since the plan"):
        svc.apply(plan["plan_id"])
    assert query(primary, "www.example.test.", "A") == ["192.0.2.77"]
    assert query(primary, "new.example.test.", "A") == []  # the other change did not go in
    last = list(AuditLog(tmp_path / "audit.jsonl").entries())[-1]
    assert last["result"] == "refused"


def test_applying_twice_is_refused(knot: DnsServer, tmp_path: Path) -> None:
    svc = service_for(knot, tmp_path)
    plan = svc.plan("example.test", [{"name": "x", "type": "A", "values": ["192.0.2.5"]}])
    svc.apply(plan["plan_id"])
    with pytest.raises(NotFound):
        svc.apply(plan["plan_id"])


def test_noop_plan(knot: DnsServer, tmp_path: Path) -> None:
    svc = service_for(knot, tmp_path)
    plan = svc.plan("example.test", [{"name": "www", "type": "A", "values": ["192.0.2.1"]}])
    assert plan["noop"]
    assert svc.apply(plan["plan_id"])["status"] == "noop"


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        ({"name": "@", "type": "NS", "values": ["ns2.example.test."]}, "protected-record"),
        ({"name": "@", "type": "MX", "values": ["5 evil.example.test."]}, "protected-record"),
        ({"name": "@", "type": "TXT", "values": ['"v=spf1 +all"']}, "protected-record"),
        ({"name": "www", "type": "A", "ttl": 5, "values": ["192.0.2.1"]}, "ttl-bounds"),
        ({"name": "www", "type": "CNAME", "values": ["mail.example.test."]}, "cname-exclusive"),
        ({"name": "@", "type": "CNAME", "values": ["www.example.test."]}, "cname-exclusive"),
    ],
)
def test_policy_refusals_name_the_rule(
    knot: DnsServer, tmp_path: Path, change: dict[str, object], rule: str
) -> None:
    svc = service_for(knot, tmp_path)
    with pytest.raises(PolicyDenied) as info:
        svc.plan("example.test", [change])
    assert info.value.details["rule"] == rule


def test_unmanaged_zone_is_refused(knot: DnsServer, tmp_path: Path) -> None:
    with pytest.raises(PolicyDenied, match="not managed"):
        service_for(knot, tmp_path).plan(
            "other.test", [{"name": "a", "type": "A", "values": ["192.0.2.1"]}]
        )


def test_apex_mail_records_allowed_when_configured(knot: DnsServer, tmp_path: Path) -> None:
    svc = service_for(knot, tmp_path, allow_apex_mail_records=True)
    plan = svc.plan(
        "example.test", [{"name": "@", "type": "MX", "values": ["20 mail.example.test."]}]
    )
    assert svc.apply(plan["plan_id"])["verified"]


def test_change_share_needs_force_and_force_is_recorded(knot: DnsServer, tmp_path: Path) -> None:
    svc = service_for(knot, tmp_path, max_change_share=0.2, min_records_for_share=2)
    created = [{"name": f"h{i}", "type": "A", "values": [f"192.0.2.{100 + i}"]} for i in range(9)]
    svc.apply(svc.plan("example.test", created)["plan_id"])  # creations do not count
    changes: list[dict[str, Any]] = [
        {"name": "www", "type": "A", "values": ["192.0.2.200"]},
        {"name": "mail", "type": "A", "values": ["192.0.2.201"]},
        {"name": "old", "type": "A", "action": "delete"},
        {"name": "h0", "type": "A", "action": "delete"},
    ]
    with pytest.raises(PolicyDenied) as info:
        svc.plan("example.test", changes)
    assert info.value.details["rule"] == "change-share"
    plan = svc.plan("example.test", changes, force=True)
    assert plan["findings"][0]["rule"] == "change-share"
    svc.apply(plan["plan_id"])
    last = list(AuditLog(tmp_path / "audit.jsonl").entries())[-1]
    assert last["force"] is True


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": "www", "type": "A", "values": ["999.1.1.1"]}, "changes[0].values"),
        ({"name": "www", "type": "AAAA", "values": ["192.0.2.1"]}, "changes[0].values"),
        ({"name": "www", "type": "MX", "values": ["mail"]}, "changes[0].values"),
        ({"name": "a" * 64, "type": "A", "values": ["192.0.2.1"]}, "changes[0].name"),
        ({"name": "bad name!", "type": "A", "values": ["192.0.2.1"]}, "changes[0].name"),
        ({"name": "www.other.test.", "type": "A", "values": ["192.0.2.1"]}, "changes[0].name"),
        ({"name": "www", "type": "HINFO", "values": ["x y"]}, "changes[0].type"),
        ({"name": "www", "type": "A", "values": []}, "changes[0].values"),
        (
            {"name": "x", "type": "CNAME", "values": ["a.example.test.", "b.example.test."]},
            "changes[0].values",
        ),
    ],
)
def test_bad_input_names_the_field(
    knot: DnsServer, tmp_path: Path, change: dict[str, object], field: str
) -> None:
    svc = service_for(knot, tmp_path)
    with pytest.raises(InvalidInput) as info:
        svc.plan("example.test", [change])
    assert info.value.details["field"] == field
    assert (
        not list((tmp_path / "data" / "plans").glob("*.json"))
        if (tmp_path / "data" / "plans").exists()
        else True
    )


def test_a_bad_value_in_a_long_plan_names_its_change(knot: DnsServer, tmp_path: Path) -> None:
    svc = service_for(knot, tmp_path)
    changes = [
        {"name": "a1", "type": "A", "values": ["192.0.2.1"]},
        {"name": "a2", "type": "A", "values": ["192.0.2.2"]},
        {"name": "a3", "type": "A", "values": ["192.0.2.300"]},
        {"name": "bad name!", "type": "A", "values": ["192.0.2.4"]},
    ]
    with pytest.raises(InvalidInput) as info:
        svc.plan("example.test", changes)
    assert info.value.details["field"] == "changes[2].values"
    assert "changes[2].values" in str(info.value)
    with pytest.raises(InvalidInput) as info:
        svc.plan("example.test", [c for i, c in enumerate(changes) if i != 2])
    assert info.value.details["field"] == "changes[2].name"


def test_change_without_ttl_keeps_the_rrsets_ttl(
    primary_ttl_3600: DnsServer, tmp_path: Path
) -> None:
    """The plan shows the RRset's own TTL (3600) for a change that names none; the UPDATE
    carries that TTL, so the change verifies and the TTL on the wire is the planned one."""
    server = primary_ttl_3600
    svc = service_for(server, tmp_path)
    plan = svc.plan(
        "example.test",
        [
            {"action": "set", "name": "www", "type": "A", "values": ["192.0.2.2"]},
            {"action": "add", "name": "mail", "type": "A", "values": ["192.0.2.26"]},
            {"action": "set", "name": "fresh", "type": "A", "values": ["192.0.2.27"]},
        ],
    )
    planned = {a["name"]: a["rrset"]["ttl"] for a in plan["after"]}
    assert planned == {
        "www.example.test.": 3600,
        "mail.example.test.": 3600,
        "fresh.example.test.": 300,  # a new RRset gets the documented default
    }
    result = svc.apply(plan["plan_id"])
    assert result["status"] == "applied", result["verification"]
    for name, ttl in planned.items():
        assert query_ttl(server, name, "A") == ttl, name
    assert query(server, "mail.example.test.", "A") == ["192.0.2.25", "192.0.2.26"]


def test_idna_names_are_encoded(knot: DnsServer, tmp_path: Path) -> None:
    svc = service_for(knot, tmp_path)
    plan = svc.plan("example.test", [{"name": "bücher", "type": "A", "values": ["192.0.2.8"]}])
    assert plan["after"][0]["name"] == "xn--bcher-kva.example.test."


def test_wrong_tsig_key_is_a_clear_error(knot: DnsServer, tmp_path: Path) -> None:
    svc = service_for(knot, tmp_path)
    wrong = service_for(knot, tmp_path / "w")
    wrong.backend.keyring = __import__("dns.tsigkeyring").tsigkeyring.from_text(  # type: ignore[attr-defined]
        {"pai-key.": make_secret()}
    )
    plan = svc.plan("example.test", [{"name": "www", "type": "A", "values": ["192.0.2.9"]}])
    wrong.plans = svc.plans
    with pytest.raises(Exception) as info:
        wrong.apply(plan["plan_id"])
    assert "TSIG" in str(info.value)
    assert query(knot, "www.example.test.", "A") == ["192.0.2.1"]


def test_unknown_key_name_is_refused_by_the_server(knot: DnsServer, tmp_path: Path) -> None:
    good = service_for(knot, tmp_path)
    plan = good.plan("example.test", [{"name": "www", "type": "A", "values": ["192.0.2.9"]}])
    stranger = service_for(knot, tmp_path / "s", tsig_key_name="someone-else")
    stranger.plans = good.plans
    with pytest.raises(Exception) as info:
        stranger.apply(plan["plan_id"])
    assert "TSIG" in str(info.value) or "refused" in str(info.value)
    assert query(knot, "www.example.test.", "A") == ["192.0.2.1"]


def test_unconfigured_server_says_what_to_set(tmp_path: Path) -> None:
    settings = load_settings(DnsSettings, tmp_path / "none.toml", data_dir=tmp_path)
    with pytest.raises(ConfigError, match="PAI_DNS_TSIG_KEY_NAME"):
        build_service(settings)


def test_secondary_gets_the_change_and_verification_covers_it(
    knot_pair: tuple[DnsServer, DnsServer], tmp_path: Path
) -> None:
    primary, secondary = knot_pair
    svc = service_for(primary, tmp_path, verify_servers=[secondary.endpoint])
    plan = svc.plan("example.test", [{"name": "www", "type": "A", "values": ["192.0.2.60"]}])
    result = svc.apply(plan["plan_id"])
    servers = {s["server"]: s for s in result["verification"]["servers"]}
    assert secondary.endpoint in servers and primary.endpoint in servers
    assert result["verified"], result
    assert result["verification"]["serials_agree"]
    assert query(secondary, "www.example.test.", "A") == ["192.0.2.60"]


def test_stopped_secondary_is_reported_and_success_not_claimed(
    knot_pair: tuple[DnsServer, DnsServer], tmp_path: Path
) -> None:
    primary, secondary = knot_pair
    svc = service_for(primary, tmp_path, verify_servers=[secondary.endpoint])
    svc.verify_timeout_s = 1.5
    secondary.stop()
    plan = svc.plan("example.test", [{"name": "www", "type": "A", "values": ["192.0.2.61"]}])
    started = time.monotonic()
    result = svc.apply(plan["plan_id"])
    assert time.monotonic() - started < 10
    assert result["status"] == "applied-unverified" and not result["verified"]
    assert result["verification"]["disagreeing"] == [secondary.endpoint]
    bad = next(s for s in result["verification"]["servers"] if s["server"] == secondary.endpoint)
    assert bad["problems"]
    last = list(AuditLog(tmp_path / "audit.jsonl").entries())[-1]
    assert last["result"] == "applied-unverified"
    assert last["verification"]["disagreeing"] == [secondary.endpoint]


def test_plan_files_are_checksummed_and_expire(knot: DnsServer, tmp_path: Path) -> None:
    svc = service_for(knot, tmp_path, plan_ttl_s=60)
    plan = svc.plan("example.test", [{"name": "www", "type": "A", "values": ["192.0.2.7"]}])
    path = tmp_path / "data" / "plans" / f"{plan['plan_id']}.json"
    data = json.loads(path.read_text())
    data["changes"][0]["values"] = ["203.0.113.66"]
    path.write_text(json.dumps(data))
    with pytest.raises(Conflict, match="checksum"):
        svc.apply(plan["plan_id"])
    plan2 = svc.plan("example.test", [{"name": "www", "type": "A", "values": ["192.0.2.7"]}])
    path2 = tmp_path / "data" / "plans" / f"{plan2['plan_id']}.json"
    data = json.loads(path2.read_text())
    data["expires_at"] = time.time() - 1
    path2.write_text(json.dumps(data))
    with pytest.raises(Conflict, match="expired"):
        svc.apply(plan2["plan_id"])
    with pytest.raises(InvalidInput):
        svc.apply("../../etc/passwd")
    assert query(knot, "www.example.test.", "A") == ["192.0.2.1"]


def test_list_zones_and_records(knot: DnsServer, tmp_path: Path) -> None:
    svc = service_for(knot, tmp_path)
    [zone] = svc.list_zones()
    assert zone["zone"] == ZONE and zone["serial"] == 1
    page = svc.list_records("example.test", name="www")
    assert page["records"] == [
        {"name": "www.example.test.", "type": "A", "ttl": 300, "values": ["192.0.2.1"]}
    ]
    assert svc.list_records("example.test", limit=2)["total"] > 2


def test_without_axfr_plans_read_the_touched_names_directly(dns_dir: Path, tmp_path: Path) -> None:
    from tests.servers.dns.conftest import start_knot

    server = start_knot(dns_dir / "noxfr", make_secret(), allow_transfer=False)
    try:
        svc = service_for(server, tmp_path)
        plan = svc.plan(
            "example.test",
            [
                {"name": "www", "type": "A", "values": ["192.0.2.33"]},
                {"name": "fresh", "type": "A", "values": ["192.0.2.34"]},
            ],
        )
        before = {b["name"]: b["rrset"] for b in plan["before"]}
        assert before["www.example.test."]["values"] == ["192.0.2.1"]
        assert before["fresh.example.test."] is None
        assert plan["findings"][0]["rule"] == "change-share"
        with pytest.raises(PolicyDenied, match="CNAME"):
            svc.plan(
                "example.test", [{"name": "www", "type": "CNAME", "values": ["mail.example.test."]}]
            )
        assert svc.apply(plan["plan_id"])["verified"]
        assert query(server, "www.example.test.", "A") == ["192.0.2.33"]
        from pai_core.errors import BackendUnavailable

        with pytest.raises(BackendUnavailable, match="transfer"):
            svc.list_records("example.test")
    finally:
        server.stop()
