"""Merge request summaries from commits and a diffstat, and the text rules GitLab uses.

:func:`summarize` turns a compare result (commits + per-file diffs) into a Markdown
description: the caller's prose first, then what changed grouped by area (the top folder, two
levels deep under ``servers/``, ``src/``, ``packages/`` …), the commits, and the linked issues
(``#12``, ``group/app#12``, and GitLab's closing pattern ``Closes #12`` / ``Fixes #12``).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "FileStat",
    "Summary",
    "closing_issues",
    "diffstat",
    "file_stat",
    "mentioned_issues",
    "summarize",
]

_NESTED_ROOTS = {"servers", "src", "packages", "apps", "services", "libs", "lib", "cmd"}
_ISSUE_REF = re.compile(r"(?<![\w/!&])((?:[\w.-]+/)+[\w.-]+)?#(\d+)\b")
# GitLab's default closing pattern (simplified): close/fix/resolve/implement + issue refs.
_CLOSING = re.compile(
    r"\b(?:clos(?:e[sd]?|ing)|fix(?:e[sd]|ing)?|resolv(?:e[sd]?|ing)|implement(?:s|ed|ing)?)"
    r":?\s+((?:(?:issues?\s+)?(?:[\w.-]+/)*[\w.-]*#\d+(?:\s*,\s*|\s+and\s+|\s*)?)+)",
    re.IGNORECASE,
)
_MAX_COMMITS_LISTED = 30
_MAX_FILES_PER_AREA = 8


@dataclass(frozen=True, slots=True)
class FileStat:
    path: str
    old_path: str | None
    status: str
    additions: int
    deletions: int


@dataclass(slots=True)
class Summary:
    markdown: str
    files: int
    additions: int
    deletions: int
    areas: list[str] = field(default_factory=list)
    linked_issues: list[str] = field(default_factory=list)


def file_stat(diff: dict[str, Any]) -> FileStat:
    """Line counts of one GitLab diff entry (``old_path``, ``new_path``, ``diff`` …)."""
    adds = dels = 0
    for line in str(diff.get("diff") or "").splitlines():
        if line.startswith("+") and not line.startswith("+++"):
            adds += 1
        elif line.startswith("-") and not line.startswith("---"):
            dels += 1
    if diff.get("new_file"):
        status = "added"
    elif diff.get("deleted_file"):
        status = "deleted"
    elif diff.get("renamed_file"):
        status = "renamed"
    else:
        status = "modified"
    new, old = str(diff.get("new_path") or diff.get("old_path")), diff.get("old_path")
    return FileStat(new, old if status == "renamed" else None, status, adds, dels)


def diffstat(diffs: list[dict[str, Any]]) -> list[FileStat]:
    return [file_stat(d) for d in diffs]


def area_of(path: str) -> str:
    parts = path.split("/")
    if len(parts) == 1:
        return "(root)"
    if parts[0] in _NESTED_ROOTS and len(parts) > 2:
        return f"{parts[0]}/{parts[1]}"
    return parts[0]


def _qualify(project: str, ref: str | None, number: str) -> str:
    return f"{ref or project}#{number}"


def mentioned_issues(text: str, project: str) -> list[str]:
    """Every issue reference in ``text``, qualified with its project (``group/app#12``)."""
    seen: dict[str, None] = {}
    for m in _ISSUE_REF.finditer(text):
        seen[_qualify(project, m.group(1), m.group(2))] = None
    return list(seen)


def closing_issues(text: str, project: str) -> list[str]:
    """The issues ``text`` closes by GitLab's closing pattern (``Fixes #12``), qualified."""
    seen: dict[str, None] = {}
    for m in _CLOSING.finditer(text):
        for ref in _ISSUE_REF.finditer(m.group(1)):
            seen[_qualify(project, ref.group(1), ref.group(2))] = None
    return list(seen)


def summarize(
    project: str,
    commits: list[dict[str, Any]],
    diffs: list[dict[str, Any]],
    prose: str | None = None,
) -> Summary:
    """The Markdown description of a merge request (see the module docstring)."""
    stats = diffstat(diffs)
    by_area: dict[str, list[FileStat]] = defaultdict(list)
    for s in stats:
        by_area[area_of(s.path)].append(s)
    areas = sorted(by_area, key=lambda a: -sum(s.additions + s.deletions for s in by_area[a]))
    messages = "\n".join(str(c.get("message") or c.get("title") or "") for c in commits)
    linked = mentioned_issues(f"{messages}\n{prose or ''}", project)
    closing = set(closing_issues(f"{messages}\n{prose or ''}", project))
    adds = sum(s.additions for s in stats)
    dels = sum(s.deletions for s in stats)

    out: list[str] = []
    if prose and prose.strip():
        out += [prose.strip(), ""]
    out += [
        "## What changed",
        "",
        f"{len(commits)} commit(s), {len(stats)} file(s), +{adds} −{dels} lines.",
        "",
    ]
    for area in areas:
        files = by_area[area]
        a = sum(s.additions for s in files)
        d = sum(s.deletions for s in files)
        out.append(f"- **{area}** ({len(files)} file(s), +{a} −{d})")
        for s in sorted(files, key=lambda s: -(s.additions + s.deletions))[:_MAX_FILES_PER_AREA]:
            moved = f" (from `{s.old_path}`)" if s.old_path else ""
            out.append(f"  - `{s.path}`{moved}: {s.status}, +{s.additions} −{s.deletions}")
        if len(files) > _MAX_FILES_PER_AREA:
            out.append(f"  - … and {len(files) - _MAX_FILES_PER_AREA} more")
    out += ["", "## Commits", ""]
    for c in commits[:_MAX_COMMITS_LISTED]:
        title = str(c.get("title") or str(c.get("message") or "").split("\n", 1)[0])
        out.append(f"- {str(c.get('short_id') or c.get('id', ''))[:8]} {title}")
    if len(commits) > _MAX_COMMITS_LISTED:
        out.append(f"- … and {len(commits) - _MAX_COMMITS_LISTED} more")
    if linked:
        out += ["", "## Linked issues", ""]
        for ref in linked:
            out.append(f"- Closes {ref}" if ref in closing else f"- Related to {ref}")
    return Summary(
        markdown="\n".join(out) + "\n",
        files=len(stats),
        additions=adds,
        deletions=dels,
        areas=areas,
        linked_issues=linked,
    )
