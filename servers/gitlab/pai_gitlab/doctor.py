"""`pai doctor gitlab`: does the token work, and can it see each allowed project?"""

from __future__ import annotations

from pai_core.errors import PaiError
from pai_core.spec import Check
from pai_gitlab.settings import GitlabSettings

__all__ = ["checks"]


def checks(settings: GitlabSettings) -> list[Check]:
    from pai_gitlab.client import Op
    from pai_gitlab.server import build_service

    try:
        service = build_service(settings)
    except PaiError as exc:
        return [Check("backend", "warn", str(exc))]
    try:
        user = service.base.client.get("/user", Op("read the token's user"))
    except PaiError as exc:
        return [Check("token", "fail", str(exc))]
    out = [Check("token", "ok", f"authenticated as {user.get('username')} ({settings.mode})")]
    for project in settings.projects or (
        [settings.default_project] if settings.default_project else []
    ):
        try:
            p = service.base.project(project)
            out.append(Check(f"project {project}", "ok", f"visible as {p.path} (id {p.id})"))
        except PaiError as exc:
            out.append(Check(f"project {project}", "fail", str(exc)))
    return out
