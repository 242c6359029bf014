"""The vault: Markdown files in PARA folders, indexed for search, safe against lost updates.

Files are the source of truth. Writes are atomic (temp file, fsync, rename) and an edit names
the content hash it was based on, so a concurrent edit by a person in Obsidian is never
overwritten. :meth:`Vault.sync` picks up edits, renames and deletions made outside (by hash),
reporting malformed frontmatter with file and line without stopping. Paths can never leave
the vault: no absolute paths, no ``..``, no symlinks pointing out; nor hide in it (no names
starting with a dot, which sync skips), nor carry invisible or control characters, nor exceed
the file system's limits. Titles and bodies carry no control characters (bodies keep tabs and
line breaks). A note whose [[links]] cannot be recorded in the fact graph is still written, and
its result says why the links are missing (``link_error``).
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import time
import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from pai_core.errors import Conflict, InvalidInput, NotFound, PaiError
from pai_core.memory.fspaths import check_length, os_errors
from pai_core.memory.fulltext import SearchIndex
from pai_core.memory.vault.markdown import (
    content_hash,
    parse_note,
    render_note,
    replace_section,
    wiki_links,
)
from pai_core.memory.vault.views import NoteInfo, SyncReport

__all__ = ["EntityLinker", "NoteInfo", "SyncReport", "Vault"]

log = logging.getLogger(__name__)
MAX_NOTE_BYTES = 2 * 2**20
PARA_KEYS = ("projects", "areas", "resources", "archives")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS v_notes (
    path TEXT PRIMARY KEY, hash TEXT NOT NULL, title TEXT NOT NULL, area TEXT,
    tags TEXT NOT NULL, entities TEXT NOT NULL, updated REAL NOT NULL, error TEXT,
    error_line INTEGER)
"""


class EntityLinker(Protocol):
    """What the vault needs from the fact graph: record that a note mentions entities."""

    def link_note(self, note: str, entities: list[str]) -> None: ...


def _slug(title: str) -> str:
    slug = re.sub(r"[^\w\- ]+", "", title, flags=re.UNICODE).strip().replace(" ", "-")[:80]
    while len(slug.encode("utf-8")) > 200:  # a file name holds 255 bytes, not 80 characters
        slug = slug[:-1]
    return slug or "note"


# Control characters (Unicode Cc) and lone surrogates (Cs); a body keeps tab, LF and CR, and a
# one-line text also refuses the line and paragraph separators (Zl, Zp). Regular expressions:
# a 2 MiB body is checked in milliseconds, not a second.
_NOT_IN_BODY = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_NOT_IN_LINE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029]")


def _bad_char(text: str, categories: tuple[str, ...]) -> str | None:
    """The first character of ``text`` in one of the Unicode ``categories``."""
    for ch in text:
        if unicodedata.category(ch) in categories:
            return ch
    return None


def _describe(ch: str) -> str:
    return f"U+{ord(ch):04X} ({unicodedata.name(ch, 'a control character')})"


def _check_text(value: str, field: str, *, multiline: bool) -> None:
    """Refuse control characters (and lone surrogates) in text that goes into a note: a title
    or name is one line; a body may hold tabs and line breaks."""
    bad = (_NOT_IN_BODY if multiline else _NOT_IN_LINE).search(value)
    if bad is not None:
        allowed = " (tabs and line breaks are fine)" if multiline else ""
        raise InvalidInput(
            f"{field} contains {_describe(bad.group())}, which a note cannot hold{allowed}",
            field=field,
            hint="Remove the control character and call again; nothing was changed.",
        )


def _check_frontmatter(frontmatter: dict[str, Any]) -> None:
    """Keys are one-line names; string values may span lines. Walked without recursion."""
    stack: list[Any] = [frontmatter]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, val in item.items():
                _check_text(str(key), "frontmatter", multiline=False)
                stack.append(val)
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            _check_text(item, "frontmatter", multiline=True)


def _now_iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class Vault:
    def __init__(
        self,
        root: Path,
        para: list[str],
        index: SearchIndex,
        linker: EntityLinker | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if len(para) != 4:
            raise InvalidInput("para_folders needs four folders", field="para_folders")
        self.root = root
        self.para = dict(zip(PARA_KEYS, para, strict=True))
        self.index = index
        self.linker = linker
        self.clock = clock
        self.root.mkdir(parents=True, exist_ok=True)
        for folder in para:
            (self.root / folder).mkdir(exist_ok=True)
        self.db = index.db
        self.db.ensure_schema("vault", [_SCHEMA])

    # ------------------------------------------------------------ paths
    def resolve(self, rel: str, *, field: str = "path", must_exist: bool = False) -> Path:
        if not isinstance(rel, str) or not rel.strip():
            raise InvalidInput(f"{field} is empty", field=field)
        text = rel.strip().replace("\\", "/")
        if text.startswith("/") or re.match(r"^[A-Za-z]:", text):
            raise InvalidInput(f"{field} must be relative to the vault", field=field)
        if any(part in ("..", "") for part in text.split("/")):
            raise InvalidInput(f"{field} may not contain '..' or empty parts", field=field)
        if not text.endswith(".md"):
            text += ".md"
        path = self.root / text
        check_length(path, field=field, within=self.root)  # first: what follows reads it all
        # Control characters, and format characters that hide or reorder what a person reads
        # (right-to-left override, zero-width space, BOM): a path must look like what it is.
        bad = _bad_char(text, ("Cc", "Cf", "Cs", "Zl", "Zp"))
        if bad is not None:
            raise InvalidInput(
                f"{field} contains {_describe(bad)}, an invisible or control character",
                field=field,
                hint="Use visible characters in note paths; nothing was changed.",
            )
        if any(part.startswith(".") for part in text.split("/")):
            raise InvalidInput(
                f"{field} names a hidden file or folder (a name that is empty or starts with '.')",
                field=field,
                hint="Give the note a name, e.g. '3-Resources/nginx.md'; hidden files are not "
                "indexed. Nothing was changed.",
            )
        root = self.root.resolve()
        try:
            resolved = path.resolve()
        except (OSError, RuntimeError):  # a symlink loop (RuntimeError before Python 3.13)
            raise InvalidInput(
                f"{field} cannot be resolved (a symlink loop?)",
                field=field,
                hint="Name another path; nothing was changed.",
            ) from None
        if not resolved.is_relative_to(root):
            raise InvalidInput(
                f"{field} leads outside the vault",
                field=field,
                hint="Symlinks out of the vault are not followed.",
            )
        if must_exist and not path.is_file():
            raise NotFound(f"no note {text}", field=field, hint="List notes with list_notes.")
        return path

    def rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def area_of(self, rel: str) -> str | None:
        top = rel.split("/", 1)[0]
        for key, folder in self.para.items():
            if top == folder:
                return key
        return None

    # ------------------------------------------------------------ writing
    def _atomic_write(self, path: Path, text: str) -> None:
        data = text.encode("utf-8")
        if len(data) > MAX_NOTE_BYTES:
            raise InvalidInput("the note is larger than 2 MiB", field="body")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".pai-", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def write_note(
        self,
        rel: str,
        body: str,
        *,
        frontmatter: dict[str, Any] | None = None,
        overwrite: bool = False,
        expected_hash: str | None = None,
    ) -> NoteInfo:
        path = self.resolve(rel)
        _check_text(body, "body", multiline=True)
        if frontmatter:
            _check_frontmatter(frontmatter)
        if path.exists():
            with os_errors("path", "read the note"):
                current = content_hash(path.read_text(encoding="utf-8", errors="replace"))
            if not overwrite:
                raise Conflict(
                    f"note {self.rel(path)} exists",
                    hint="Use edit_note, or pass overwrite with the expected_hash from read_note.",
                )
            if expected_hash != current:
                raise Conflict(
                    f"note {self.rel(path)} changed since it was read (hash differs)",
                    hint="read_note again and redo the change on the new text.",
                )
        now = self.clock()
        meta = dict(frontmatter or {})
        meta.setdefault("created", _now_iso(now))
        meta["updated"] = _now_iso(now)
        text = render_note(meta, body)
        with os_errors("path", "write the note"):
            self._atomic_write(path, text)
        return self._index_file(path, text)

    def write_learning(
        self,
        title: str,
        problem: str,
        solution: str,
        takeaway: str,
        *,
        tags: list[str] | None = None,
        entities: list[str] | None = None,
        project: str | None = None,
        area: str | None = None,
        folder: str | None = None,
    ) -> NoteInfo:
        for name, value in (
            ("title", title),
            ("problem", problem),
            ("solution", solution),
            ("takeaway", takeaway),
        ):
            if not value or not value.strip():
                raise InvalidInput(f"{name} is empty", field=name)
            _check_text(value, name, multiline=name != "title")
        for name, values in (("tags", tags or []), ("entities", entities or [])):
            for value in values:
                _check_text(value, name, multiline=False)
        for name, one in (("project", project), ("area", area)):
            if one:
                _check_text(one, name, multiline=False)
        if folder is None:
            folder = (
                f"{self.para['projects']}/{_slug(project)}"
                if project
                else (f"{self.para['areas']}/{_slug(area)}" if area else self.para["resources"])
            )
        ents = list(dict.fromkeys((entities or []) + wiki_links(problem + solution + takeaway)))
        links = " ".join(
            f"[[{e}]]" for e in ents if f"[[{e}]]" not in problem + solution + takeaway
        )
        body = (
            f"# {title.strip()}\n\n## Problem\n\n{problem.strip()}\n\n## Solution\n\n"
            f"{solution.strip()}\n\n## Takeaway\n\n{takeaway.strip()}\n"
        )
        if links:
            body += f"\nRelated: {links}\n"
        meta: dict[str, Any] = {
            "type": "learning",
            "title": title.strip(),
            "tags": tags or [],
            "entities": ents,
        }
        if project:
            meta["project"] = project
        if area:
            meta["area"] = area
        rel = f"{folder}/{_slug(title)}.md"
        if self.resolve(rel).exists():
            rel = f"{folder}/{_slug(title)}-{int(self.clock())}.md"
        return self.write_note(rel, body, frontmatter=meta)

    def read_note(self, rel: str) -> dict[str, Any]:
        path = self.resolve(rel, must_exist=True)
        with os_errors("path", "read the note"):
            text = path.read_text(encoding="utf-8", errors="replace")
        parsed = parse_note(text, path.stem)
        return {
            "path": self.rel(path),
            "title": parsed.title,
            "hash": content_hash(text),
            "frontmatter": parsed.frontmatter,
            "body": parsed.body,
            "links": parsed.links,
            "error": parsed.error,
        }

    def edit_note(
        self,
        rel: str,
        expected_hash: str,
        mode: Literal["append", "replace_section", "find_replace"],
        text: str,
        *,
        section: str | None = None,
        find: str | None = None,
    ) -> NoteInfo:
        path = self.resolve(rel, must_exist=True)
        _check_text(text, "text", multiline=True)
        with os_errors("path", "read the note"):
            current = path.read_text(encoding="utf-8", errors="replace")
        if content_hash(current) != expected_hash:
            raise Conflict(
                f"note {self.rel(path)} changed since it was read (hash differs)",
                hint="read_note again and redo the edit on the new text; nothing was written.",
            )
        parsed = parse_note(current, path.stem)
        if parsed.error:
            raise InvalidInput(
                f"the note's frontmatter is broken (line {parsed.error_line}): {parsed.error}",
                field="path",
                hint="Fix the frontmatter by hand first.",
            )
        body = parsed.body
        if mode == "append":
            body = body.rstrip("\n") + "\n\n" + text.strip() + "\n"
        elif mode == "replace_section":
            if not section:
                raise InvalidInput("replace_section needs section", field="section")
            replaced = replace_section(body, section, text)
            if replaced is None:
                raise NotFound(f"no section '{section}' in the note", field="section")
            body = replaced
        elif mode == "find_replace":
            if not find:
                raise InvalidInput("find_replace needs find", field="find")
            count = body.count(find)
            if count != 1:
                raise InvalidInput(
                    f"find text occurs {count} times; it must occur exactly once", field="find"
                )
            body = body.replace(find, text)
        else:
            raise InvalidInput("mode must be append, replace_section or find_replace", field="mode")
        meta = dict(parsed.frontmatter)
        meta["updated"] = _now_iso(self.clock())
        new_text = render_note(meta, body)
        with os_errors("path", "write the note"):
            self._atomic_write(path, new_text)
        return self._index_file(path, new_text)

    def move_note(self, rel: str, to: str) -> NoteInfo:
        src = self.resolve(rel, must_exist=True)
        dest_rel = to
        if to in self.para:  # "archives" etc.: keep the name, move the PARA folder
            inner = self.rel(src).split("/", 1)[1] if "/" in self.rel(src) else src.name
            dest_rel = f"{self.para[to]}/{inner}"
        dest = self.resolve(dest_rel, field="to")
        if dest.exists():
            raise Conflict(f"{self.rel(dest)} exists", hint="Choose another destination.")
        with os_errors("to", "move the note there"):
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dest)
        with self.index.write() as conn:
            conn.execute("DELETE FROM v_notes WHERE path=?", (self.rel(src),))
            self.index.delete(conn, "note", self.rel(src))
        return self._index_file(dest, dest.read_text(encoding="utf-8", errors="replace"))

    # ------------------------------------------------------------ index
    def _index_file(self, path: Path, text: str) -> NoteInfo:
        rel = self.rel(path)
        parsed = parse_note(text, path.stem)
        fm = parsed.frontmatter
        tags = [str(t) for t in fm.get("tags") or []] if isinstance(fm.get("tags"), list) else []
        ents = list(
            dict.fromkeys(
                [str(e) for e in fm.get("entities") or [] if isinstance(fm.get("entities"), list)]
                + parsed.links
            )
        )
        area = self.area_of(rel)
        updated = path.stat().st_mtime
        h = content_hash(text)
        with self.index.write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO v_notes VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    rel,
                    h,
                    parsed.title,
                    area,
                    json.dumps(tags),
                    json.dumps(ents),
                    updated,
                    parsed.error,
                    parsed.error_line,
                ),
            )
            self.index.upsert(
                conn, "note", rel, parsed.title, parsed.body, at=updated, area=area, entities=ents
            )
        link_error = None
        if self.linker is not None and ents:
            try:
                self.linker.link_note(rel, ents)
            except Exception as exc:  # the file is written; say that its links are not
                why = exc.message if isinstance(exc, PaiError) else str(exc) or type(exc).__name__
                link_error = (
                    f"the note is written, but its links to {len(ents)} entities were not "
                    f"recorded in the fact graph: {why}. Fix that and edit the note to record them"
                )
                log.warning("could not link %s to entities: %s", rel, why)
        return NoteInfo(
            path=rel,
            title=parsed.title,
            hash=h,
            area=area,
            tags=tags,
            entities=ents,
            updated=_now_iso(updated),
            error=parsed.error,
            link_error=link_error,
        )

    def sync(self) -> SyncReport:
        """Bring the index in line with the files (by content hash)."""
        report = SyncReport()
        known = {row[0]: row[1] for row in self.db.conn().execute("SELECT path, hash FROM v_notes")}
        seen: set[str] = set()
        for path in sorted(self.root.rglob("*.md")):
            rel = self.rel(path)
            if any(part.startswith(".") for part in Path(rel).parts) or path.is_symlink():
                continue
            seen.add(rel)
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError as exc:
                report.errors.append({"path": rel, "line": None, "message": str(exc)})
                continue
            h = content_hash(text)
            if known.get(rel) == h:
                report.unchanged += 1
                continue
            info = self._index_file(path, text)
            if rel in known:
                report.updated += 1
            else:
                report.added += 1
            if info.error:
                parsed = parse_note(text, path.stem)
                report.errors.append(
                    {"path": rel, "line": parsed.error_line, "message": parsed.error}
                )
            if info.link_error:
                report.errors.append({"path": rel, "line": None, "message": info.link_error})
        gone = set(known) - seen
        if gone:
            with self.index.write() as conn:
                for rel in gone:
                    conn.execute("DELETE FROM v_notes WHERE path=?", (rel,))
                    self.index.delete(conn, "note", rel)
            report.removed = len(gone)
        return report

    def problems(self) -> list[dict[str, Any]]:
        rows = self.db.conn().execute(
            "SELECT path, error_line, error FROM v_notes WHERE error IS NOT NULL ORDER BY path"
        )
        return [{"path": r[0], "line": r[1], "message": r[2]} for r in rows]

    def list_notes(
        self,
        *,
        area: str | None = None,
        tag: str | None = None,
        entity: str | None = None,
        since: float | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[NoteInfo]:
        where: list[str] = []
        args: list[Any] = []
        if area:
            if area not in PARA_KEYS:
                raise InvalidInput(f"area must be one of {', '.join(PARA_KEYS)}", field="area")
            where.append("area=?")
            args.append(area)
        if tag:
            where.append("tags LIKE ?")
            args.append(f'%"{tag}"%')
        if entity:
            where.append("lower(entities) LIKE ?")
            args.append(f'%"{entity.lower()}"%')
        if since is not None:
            where.append("updated >= ?")
            args.append(since)
        sql = "SELECT path, title, hash, area, tags, entities, updated, error FROM v_notes"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY updated DESC LIMIT ? OFFSET ?"
        rows = self.db.conn().execute(sql, [*args, limit, offset])
        return [
            NoteInfo(
                path=r[0],
                title=r[1],
                hash=r[2],
                area=r[3],
                tags=json.loads(r[4]),
                entities=json.loads(r[5]),
                updated=_now_iso(r[6]),
                error=r[7],
            )
            for r in rows
        ]
