"""A deployment verdict is remembered per URL: the newest verdict supersedes the last one, with
the evidence, and the verification is in the audit log."""

from __future__ import annotations

from pathlib import Path

from pai_core.audit import AuditLog
from pai_core.memory import open_memory
from pai_core.settings import MemorySettings
from pai_verify.service import VerifyService
from tests.servers.verify.conftest import Site
from tests.servers.verify.test_verify_service import run


def test_verdicts_are_remembered_and_superseded(site: Site, tmp_path: Path) -> None:
    memory = MemorySettings(db_path=tmp_path / "m" / "memory.db", vault_path=tmp_path / "m" / "v")

    async def body(svc: VerifyService) -> list[object]:
        good = await svc.verify_deployment(site.url("/"), min_images=2, title_contains="PAI")
        bad = await svc.verify_deployment(site.url("/"), title_contains="not the title")
        return [good, bad]

    good, bad = run(tmp_path, body, memory=memory, audit_log=tmp_path / "audit.jsonl")
    assert good.passed and good.memory.remembered
    assert not bad.passed and bad.memory.remembered
    assert "passed" in bad.memory.detail  # what it superseded

    entity = open_memory(memory).graph.get_entity(site.url("/"), include_history=True)
    verdicts = [(f.value, f.current) for f in entity.outgoing if f.predicate == "VERIFIED"]
    assert sorted(verdicts) == [("failed", True), ("passed", False)]
    current = next(f for f in entity.outgoing if f.current)
    assert "failing: title" in current.note and "screenshot" in current.note
    assert current.source == bad.memory.source
    entries = list(AuditLog(tmp_path / "audit.jsonl").entries())
    assert [e["verdict"] for e in entries] == ["passed", "failed"]
    assert current.source == f"verify:{entries[1]['seq']}"


def test_verdicts_are_not_remembered_when_turned_off(site: Site, tmp_path: Path) -> None:
    memory = MemorySettings(db_path=tmp_path / "m" / "memory.db", vault_path=tmp_path / "m" / "v")

    async def body(svc: VerifyService) -> object:
        return await svc.verify_deployment(site.url("/"))

    verdict = run(tmp_path, body, memory=memory, remember=False)
    assert verdict.memory.remembered is False
    assert "PAI_VERIFY_REMEMBER" in verdict.memory.detail
    assert not (tmp_path / "m" / "memory.db").exists()
