"""Against a real GitLab, read-only: set PAI_TEST_GITLAB_URL and PAI_TEST_GITLAB_TOKEN
(and PAI_TEST_GITLAB_PROJECT, a project the token can read) to run it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pai_core.settings import load_settings
from pai_gitlab.client import Op
from pai_gitlab.server import build_service
from pai_gitlab.settings import GitlabSettings

URL = os.environ.get("PAI_TEST_GITLAB_URL")
TOKEN = os.environ.get("PAI_TEST_GITLAB_TOKEN")
PROJECT = os.environ.get("PAI_TEST_GITLAB_PROJECT")

pytestmark = pytest.mark.skipif(
    not (URL and TOKEN),
    reason="no real GitLab: set PAI_TEST_GITLAB_URL and PAI_TEST_GITLAB_TOKEN to run the live tests",
)


def test_live_reads(tmp_path: Path) -> None:
    settings = load_settings(
        GitlabSettings,
        tmp_path / "none.toml",
        url=URL,
        token=TOKEN,
        mode="read-only",
        data_dir=tmp_path / "data",
        audit_log=tmp_path / "audit.jsonl",
    )
    svc = build_service(settings)
    user = svc.base.client.get("/user", Op("read the token's user"))
    assert user["username"]
    if not PROJECT:
        pytest.skip("set PAI_TEST_GITLAB_PROJECT to read issues, MRs and pipelines live")
    page = svc.issues.search(PROJECT, state="all", per_page=5)
    assert page.project and len(page.issues) <= 5
    mrs = svc.mrs.list_page(PROJECT, state="all", per_page=5)
    for mr in mrs.merge_requests[:1]:
        detail = svc.mrs.get(PROJECT, mr.iid, per_page=10)
        assert len(detail.files) <= 10
    svc.ci.list_page(PROJECT, per_page=5)
    assert TOKEN not in page.model_dump_json() + mrs.model_dump_json()
