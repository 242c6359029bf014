"""What this server may do: the mode (read-only | write | full) and the project allowlist.

Rules, each named in its refusal: ``mode`` (write tools need ``write`` or ``full``; merging and
deleting files need ``full``) and ``project-allowlist`` (with ``PAI_GITLAB_PROJECTS`` set, only
those projects, by path or numeric id). Both are checked before anything is sent to GitLab.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pai_core.errors import PolicyDenied

__all__ = ["Access"]

_RANK = {"read-only": 0, "write": 1, "full": 2}


@dataclass(frozen=True, slots=True)
class Access:
    mode: Literal["read-only", "write", "full"] = "read-only"
    projects: tuple[str, ...] = ()

    def need(self, level: Literal["write", "full"], what: str) -> None:
        """Refuse ``what`` unless the mode is at least ``level``."""
        if _RANK[self.mode] < _RANK[level]:
            raise PolicyDenied(
                f"{what} needs mode '{level}', this server runs in mode '{self.mode}'",
                rule="mode",
                hint=f"Ask the user to set PAI_GITLAB_MODE={level} and restart the server "
                "if they want this; nothing was changed.",
            )

    @property
    def _allowed(self) -> set[str]:
        return {p.strip().strip("/").lower() for p in self.projects if p.strip()}

    def literal_ok(self, project: str) -> bool | None:
        """True/False when ``project`` as given decides it; None when its id must be looked up."""
        allowed = self._allowed
        if not allowed or project.strip("/").lower() in allowed:
            return True
        return None if project.isdigit() else False

    def check(self, project_id: int, path: str) -> None:
        allowed = self._allowed
        if allowed and str(project_id) not in allowed and path.lower() not in allowed:
            self.deny(path)

    def deny(self, project: str) -> None:
        raise PolicyDenied(
            f"project {project} is not in this server's allowlist",
            rule="project-allowlist",
            hint=f"Allowed: {', '.join(sorted(self._allowed))} (PAI_GITLAB_PROJECTS); "
            "nothing was read or changed.",
        )
