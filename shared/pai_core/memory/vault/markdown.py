"""Notes as text: YAML frontmatter, sections, [[wiki links]], content hashes.

Parsing never raises on a person's malformed frontmatter: it returns the problem with its
line, so one bad note never stops the sync of the others.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ParsedNote",
    "content_hash",
    "parse_note",
    "render_note",
    "replace_section",
    "wiki_links",
]

_LINK = re.compile(r"\[\[([^\]|#]+)(?:#[^\]|]*)?(?:\|[^\]]*)?\]\]")


def content_hash(text: str) -> str:
    """SHA-256 of the note's text: the guard for lost updates and the sync key."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class ParsedNote:
    frontmatter: dict[str, Any]
    body: str
    title: str
    error: str | None = None
    error_line: int | None = None
    links: list[str] = field(default_factory=list)


def wiki_links(text: str) -> list[str]:
    """Distinct ``[[Target]]`` names in order (aliases and headings stripped)."""
    return list(
        dict.fromkeys(m.group(1).strip() for m in _LINK.finditer(text) if m.group(1).strip())
    )


def parse_note(text: str, fallback_title: str) -> ParsedNote:
    frontmatter: dict[str, Any] = {}
    body = text
    error = error_line = None
    if text.startswith("---\n") or text.startswith("---\r\n"):
        end = re.search(r"^---\s*$", text[4:], flags=re.M)
        if end is None:
            error, error_line = "frontmatter is not closed with '---'", 1
        else:
            import yaml

            raw = text[4 : 4 + end.start()]
            body = text[4 + end.end() :].lstrip("\n")
            try:
                loaded = yaml.safe_load(raw)
                if loaded is None:
                    loaded = {}
                if not isinstance(loaded, dict):
                    raise yaml.YAMLError("frontmatter must be a mapping")
                frontmatter = loaded
            except yaml.YAMLError as exc:
                mark = getattr(exc, "problem_mark", None)
                error = f"frontmatter is not valid YAML: {getattr(exc, 'problem', None) or exc}"
                error_line = (mark.line + 2) if mark is not None else 2
    heading = re.search(r"^#\s+(.+)$", body, flags=re.M)
    title = str(
        frontmatter.get("title") or (heading.group(1).strip() if heading else fallback_title)
    )
    return ParsedNote(frontmatter, body, title, error, error_line, wiki_links(text))


def render_note(frontmatter: dict[str, Any], body: str) -> str:
    """The note's text. Line breaks become ``\\n``: files are read back with universal
    newlines, so a ``\\r\\n`` kept here would make the written hash differ from the read one."""
    import yaml

    head = yaml.safe_dump(frontmatter, sort_keys=False, allow_unicode=True).strip()
    body = body.replace("\r\n", "\n").replace("\r", "\n")
    return f"---\n{head}\n---\n\n{body.strip()}\n"


def replace_section(body: str, heading: str, new_text: str) -> str | None:
    """Replace the text under ``## heading`` (up to the next heading of the same or higher
    level); None when there is no such heading."""
    pattern = re.compile(rf"^(#{{1,6}})\s+{re.escape(heading.strip())}\s*$", flags=re.M)
    m = pattern.search(body)
    if m is None:
        return None
    level = len(m.group(1))
    rest = body[m.end() :]
    nxt = re.search(rf"^#{{1,{level}}}\s+", rest, flags=re.M)
    end = m.end() + (nxt.start() if nxt else len(rest))
    return body[: m.end()] + "\n\n" + new_text.strip() + "\n\n" + body[end:].lstrip("\n")
