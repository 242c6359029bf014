"""Claude Code transcripts (one JSON object per line) → episodes, idempotently.

Each user or assistant turn becomes an episode with its timestamp, session and project
directory; tool calls and results are summarised in a line each. Re-ingesting the same or a
longer transcript adds only what is new: a transcript's progress (byte offset) is kept, and
episode ids are the turns' own uuids. A truncated last line is left for next time; a corrupt
line is skipped and counted.

Only ``.jsonl`` files named by an absolute path are read, and a server passes the folders it may
read them from (``roots``, e.g. Claude Code's ``~/.claude/projects``): a transcript elsewhere is
refused with the setting to change, before anything about it is looked at.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from pai_core.errors import InvalidInput, NotFound
from pai_core.memory.episodes.views import IngestReport
from pai_core.memory.fspaths import check_length, os_errors
from pai_core.memory.fulltext import SearchIndex

__all__ = ["EpisodeStore", "IngestReport", "turn_text"]

_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS e_episodes (
        id TEXT PRIMARY KEY, session_id TEXT NOT NULL, role TEXT NOT NULL, at REAL NOT NULL,
        project TEXT, text TEXT NOT NULL, source TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS e_episodes_at ON e_episodes(at)",
    """CREATE TABLE IF NOT EXISTS e_transcripts (
        path TEXT PRIMARY KEY, session_id TEXT, offset INTEGER NOT NULL, episodes INTEGER NOT NULL,
        skipped INTEGER NOT NULL)""",
]
CHUNK = 1200


def _clip(text: str, n: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def turn_text(message: Any) -> str:
    """The readable text of a message: text blocks, and one line per tool call or result."""
    if isinstance(message, str):
        return message
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in content or []:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            parts.append(str(block.get("text", "")))
        elif kind == "tool_use":
            args = json.dumps(block.get("input", {}), ensure_ascii=False)
            parts.append(f"[tool {block.get('name', '?')}: {_clip(args, 200)}]")
        elif kind == "tool_result":
            result = block.get("content")
            if isinstance(result, list):
                result = " ".join(str(b.get("text", "")) for b in result if isinstance(b, dict))
            parts.append(f"[result: {_clip(str(result or ''), 300)}]")
        elif kind == "thinking":
            continue
    return "\n".join(p for p in parts if p.strip())


def _timestamp(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    from pai_core.memory.timeparse import in_range

    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except (ValueError, OverflowError):
        return None
    return at if in_range(at) else None


def _transcript(path: Path, roots: Sequence[Path] | None, setting: str) -> Path:
    """``path`` if it may be read as a transcript; refused (naming ``setting``) otherwise."""
    folders = ", ".join(str(r) for r in roots) if roots is not None else ""
    where = f"Claude Code's transcripts are under {folders}" if folders else "Give its full path"
    path = path.expanduser()
    if not path.is_absolute():
        raise InvalidInput(
            "path must be absolute (the transcript's full path)",
            field="path",
            hint=f"{where}; nothing was read.",
        )
    if path.suffix != ".jsonl":
        raise InvalidInput("a transcript is a .jsonl file", field="path")
    check_length(path, field="path")
    if roots is not None:
        with os_errors("path", "look up the transcript"):
            try:
                real = path.resolve()
            except RuntimeError:  # a symlink loop (before Python 3.13)
                raise InvalidInput(
                    "path cannot be resolved (a symlink loop?)", field="path"
                ) from None
            allowed = [Path(r).expanduser().resolve() for r in roots]
        if not any(real.is_relative_to(r) for r in allowed):
            raise InvalidInput(
                "path is outside the folders transcripts are read from"
                + (f" ({folders})" if folders else " (none is configured)"),
                field="path",
                hint=f"To read transcripts from another folder, add it to {setting}; "
                "nothing was read.",
            )
    with os_errors("path", "look up the transcript"):
        if not path.is_file():
            raise NotFound(f"no transcript at {path}", field="path")
    return path


class EpisodeStore:
    def __init__(self, index: SearchIndex) -> None:
        self.index = index
        self.db = index.db
        self.db.ensure_schema("episodes", _SCHEMA)

    def ingest(
        self,
        path: Path,
        *,
        roots: Sequence[Path] | None = None,
        setting: str = "transcript_roots",
    ) -> IngestReport:
        """Add the transcript's new turns. ``roots``: the only folders it may lie in (None: any;
        servers always pass theirs), ``setting``: what a refusal tells the user to change."""
        path = _transcript(path, roots, setting)
        key = str(path.resolve())
        conn = self.db.conn()
        row = conn.execute(
            "SELECT offset, episodes, skipped, session_id FROM e_transcripts WHERE path=?", (key,)
        ).fetchone()
        offset, total, skipped, session = row or (0, 0, 0, None)
        with os_errors("path", "read the transcript"):
            size = path.stat().st_size
            if size < offset:  # rewritten or truncated: read again; ids keep it idempotent
                offset = 0
            with path.open("rb") as fh:
                fh.seek(offset)
                data = fh.read()
        complete, _, partial = data.rpartition(b"\n")
        lines = complete.split(b"\n") if complete else []
        added = new_skipped = 0
        with self.db.write() as wconn:
            for lineno, raw in enumerate(lines):
                if not raw.strip():
                    continue
                try:
                    obj = json.loads(raw)
                except (json.JSONDecodeError, UnicodeDecodeError):
                    new_skipped += 1
                    continue
                if not isinstance(obj, dict) or obj.get("type") not in ("user", "assistant"):
                    continue
                text = turn_text(obj.get("message"))
                at = _timestamp(obj.get("timestamp"))
                if not text.strip() or at is None:
                    new_skipped += 1 if at is None else 0
                    continue
                session = str(obj.get("sessionId") or session or path.stem)
                eid = str(obj.get("uuid") or f"{session}:{offset}:{lineno}")
                if self._add(wconn, eid, session, obj["type"], at, obj.get("cwd"), text, key):
                    added += 1
            offset += len(complete) + (1 if complete else 0)
            wconn.execute(
                "INSERT OR REPLACE INTO e_transcripts VALUES (?,?,?,?,?)",
                (key, session, offset, total + added, skipped + new_skipped),
            )
        return IngestReport(
            path=str(path),
            session_id=session,
            added=added,
            skipped_lines=skipped + new_skipped,
            total_episodes=total + added,
            pending_partial_line=bool(partial.strip()),
        )

    def _add(
        self,
        conn: sqlite3.Connection,
        eid: str,
        session: str,
        role: str,
        at: float,
        project: Any,
        text: str,
        source: str,
    ) -> bool:
        try:
            conn.execute(
                "INSERT INTO e_episodes VALUES (?,?,?,?,?,?,?)",
                (eid, session, role, at, project, text, source),
            )
        except sqlite3.IntegrityError:
            return False
        proj = Path(str(project)).name if project else None
        for i in range(0, max(len(text), 1), CHUNK):
            chunk_ref = eid if i == 0 else f"{eid}#{i // CHUNK}"
            self.index.upsert(
                conn,
                "episode",
                chunk_ref,
                f"{role} in {proj or session}",
                text[i : i + CHUNK],
                at=at,
                area=proj,
            )
        return True

    def episode(self, eid: str) -> dict[str, Any] | None:
        row = (
            self.db.conn()
            .execute(
                "SELECT id, session_id, role, at, project, text FROM e_episodes WHERE id=?",
                (eid.split("#", 1)[0],),
            )
            .fetchone()
        )
        if row is None:
            return None
        return {
            "id": row[0],
            "session_id": row[1],
            "role": row[2],
            "at": row[3],
            "project": row[4],
            "text": row[5],
        }

    def timeline(
        self, since: float, until: float, limit: int = 200
    ) -> dict[str, list[dict[str, Any]]]:
        """Episodes in the window grouped by project directory name."""
        rows = (
            self.db.conn()
            .execute(
                "SELECT id, role, at, project, text FROM e_episodes WHERE at BETWEEN ? AND ? "
                "ORDER BY at LIMIT ?",
                (since, until, limit),
            )
            .fetchall()
        )
        groups: dict[str, list[dict[str, Any]]] = {}
        for eid, role, at, project, text in rows:
            name = Path(project).name if project else "conversations"
            groups.setdefault(name, []).append(
                {"at": at, "event": f"said ({role})", "fact": _clip(text, 160), "fact_id": eid}
            )
        return groups

    def count(self) -> int:
        return int(self.db.conn().execute("SELECT count(*) FROM e_episodes").fetchone()[0])
