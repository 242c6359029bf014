"""A loopback GitLab (fake_gitlab.py) per test, and the service built over it from settings."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pai_core.settings import load_settings
from pai_gitlab.server import build_service
from pai_gitlab.service import GitlabService
from pai_gitlab.settings import GitlabSettings
from tests.servers.gitlab.fake_gitlab import FakeGitlab, Project

TOKEN = "glpat-TESTtoken-0123456789abcdef"
GUEST_TOKEN = "glpat-GUESTtoken-0123456789abcd"
README = "# app\n\nHello.\n"


@pytest.fixture
def fake() -> Iterator[FakeGitlab]:
    with FakeGitlab({TOKEN: ("alice", "maintainer"), GUEST_TOKEN: ("bob", "guest")}) as server:
        yield server


@pytest.fixture
def project(fake: FakeGitlab) -> Project:
    return fake.add_project(
        "group/app", {"README.md": README, "docs/guide.md": "Guide\n", "src/app.py": "x = 1\n"}
    )


def settings_for(fake: FakeGitlab, tmp_path: Path, **overrides: Any) -> GitlabSettings:
    values: dict[str, Any] = {
        "url": fake.url,
        "token": TOKEN,
        "mode": "full",
        "default_project": "group/app",
        "data_dir": tmp_path / "data",
        "audit_log": tmp_path / "audit.jsonl",
        "min_poll_s": 0.01,
        **overrides,
    }
    return load_settings(GitlabSettings, tmp_path / "none.toml", **values)


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def make_service(
    fake: FakeGitlab, tmp_path: Path, sleeps: list[float]
) -> Callable[..., GitlabService]:
    def make(**overrides: Any) -> GitlabService:
        return build_service(settings_for(fake, tmp_path, **overrides), sleep=sleeps.append)

    return make


@pytest.fixture
def svc(make_service: Callable[..., GitlabService], project: Project) -> GitlabService:
    return make_service()


def mutations(fake: FakeGitlab) -> list[tuple[str, str]]:
    """The writing requests GitLab received."""
    return [(m, p) for m, p, _ in fake.requests if m in ("POST", "PUT", "DELETE")]
