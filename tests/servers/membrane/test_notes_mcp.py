"""The file layer and search end to end over stdio: tools, the watcher, health reporting."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from tests.conftest import script

DATA = Path(__file__).parent / "data"
LONG = "a/" * 50_000 + "b"  # a 100 kB path
# Calls that must come back as InvalidInput naming the field (default: path), never a bare
# "Error executing tool": name, tool, arguments.
BAD_CALLS: list[tuple[str, str, dict[str, Any]]] = [
    ("write_long_name", "write_note", {"path": "a" * 300, "body": "x"}),
    ("write_long_path", "write_note", {"path": LONG, "body": "x"}),
    ("read_long", "read_note", {"path": "a" * 300}),
    ("move_from_long", "move_note", {"path": LONG, "to": "archives"}),
    ("ingest_long", "ingest_transcript", {"path": "/" + "a" * 300 + ".jsonl"}),
    ("ingest_relative", "ingest_transcript", {"path": "s-42.jsonl"}),
    ("body_nul", "write_note", {"path": "3-Resources/nul", "body": "a\x00b"}),
    ("path_rlo", "write_note", {"path": "3-Resources/inv\u202egpj.md", "body": "x"}),
    ("path_zero_width", "read_note", {"path": "3-Resources/ker\u200bnel"}),
    ("path_dot", "write_note", {"path": ".", "body": "x"}),
    (
        "title_nul",
        "write_learning",
        {"title": "T\x00", "problem": "p", "solution": "s", "takeaway": "t"},
    ),
    (
        "valid_from",
        "remember_fact",
        {
            "fact": {
                "subject": "a",
                "predicate": "USES",
                "object": "b",
                "valid_from": "99999 years ago",
            }
        },
    ),
    (
        "batch_valid_to",
        "remember_facts",
        {
            "facts": [
                {"subject": "a", "predicate": "USES", "object": "c"},
                {"subject": "a", "predicate": "USES", "object": "b", "valid_to": "in 99999 years"},
            ]
        },
    ),
    ("since_empty", "timeline", {"since": ""}),
    ("since_far", "timeline", {"since": "9999-12-31T23:59:59-23:59"}),
    (
        "exclusions",
        "define_predicate",
        {"name": "GUARDS", "exclusive_with": [f"P{i}" for i in range(2000)]},
    ),
]
FIELDS = {
    "title_nul": "title",
    "body_nul": "body",
    "valid_from": "valid_from",
    "batch_valid_to": "facts[1].valid_to",
    "since_empty": "since",
    "since_far": "since",
    "exclusions": "exclusive_with",
    "move_to_long": "to",
}


def test_vault_search_and_conversations_through_mcp(
    pai_env: dict[str, str], tmp_path: Path
) -> None:
    vault = Path(pai_env["PAI_HOME"]) / "memory" / "vault"
    env = {k: v for k, v in pai_env.items() if k != "CLAUDE_CONFIG_DIR"}
    # under Claude Code's projects directory, the only folder transcripts are read from
    transcript = (
        Path(env["HOME"]) / ".claude" / "projects" / "-home-dev-projects-pai" / "s-42.jsonl"
    )
    transcript.parent.mkdir(parents=True)
    shutil.copy(DATA / "session.jsonl", transcript)
    outside = tmp_path / "s-43.jsonl"
    shutil.copy(DATA / "session.jsonl", outside)

    async def call(s: ClientSession, name: str, args: dict[str, Any]) -> Any:
        res = await s.call_tool(name, args)
        return res

    async def run() -> dict[str, Any]:
        out: dict[str, Any] = {}
        params = StdioServerParameters(command=script("membrane"), env=env)
        async with stdio_client(params) as (r, w), ClientSession(r, w) as s:
            await s.initialize()
            names = {t.name for t in (await s.list_tools()).tools}
            assert {
                "write_learning",
                "write_note",
                "read_note",
                "edit_note",
                "move_note",
                "list_notes",
                "sync_vault",
                "search",
                "recall",
                "ingest_transcript",
            } <= names
            learned = await call(
                s,
                "write_learning",
                {
                    "title": "Secondary lags after update",
                    "problem": "ns2 served stale A records",
                    "solution": "add ns2 to the NOTIFY list",
                    "takeaway": "configure NOTIFY",
                    "entities": ["ns2"],
                    "project": "PAI",
                },
            )
            path = learned.structured_content["path"]
            read = await call(s, "read_note", {"path": path})
            note_hash = read.structured_content["hash"]
            ok = await call(
                s,
                "edit_note",
                {
                    "path": path,
                    "expected_hash": note_hash,
                    "mode": "append",
                    "text": "Seen twice in November.",
                },
            )
            stale = await call(
                s,
                "edit_note",
                {"path": path, "expected_hash": note_hash, "mode": "append", "text": "lost?"},
            )
            out.update(ok=ok, stale=stale)
            # a person edits in Obsidian while the server runs: the watcher picks it up
            (vault / "3-Resources").mkdir(parents=True, exist_ok=True)
            (vault / "3-Resources" / "kernel.md").write_text("# Kernel\n\nzram swap tuning")
            deadline = time.monotonic() + 20
            found: list[Any] = []
            while time.monotonic() < deadline and not found:
                res = await call(s, "search", {"query": "zram", "kinds": ["notes"]})
                found = res.structured_content["hits"]
                if not found:
                    await anyio.sleep(0.1)
            out["watched"] = found
            out["escape"] = await call(s, "write_note", {"path": "../evil.md", "body": "x"})
            out["ingest"] = await call(s, "ingest_transcript", {"path": str(transcript)})
            out["refused"] = {name: await call(s, tool, args) for name, tool, args in BAD_CALLS}
            out["refused"]["edit_long"] = await call(
                s,
                "edit_note",
                {"path": LONG, "expected_hash": note_hash, "mode": "append", "text": "x"},
            )
            out["refused"]["move_to_long"] = await call(s, "move_note", {"path": path, "to": LONG})
            out["refused"]["ingest_outside"] = await call(
                s, "ingest_transcript", {"path": str(outside)}
            )
            out["unlinked"] = await call(
                s, "write_note", {"path": "3-Resources/" + "n" * 190, "body": "on [[ns2]]"}
            )
            out["search"] = await call(s, "search", {"query": "secondary notify"})
            out["recall"] = await call(
                s, "recall", {"topic": "secondary NOTIFY", "budget_tokens": 500}
            )
            out["timeline"] = await call(
                s, "timeline", {"since": "2026-11-19", "until": "2026-11-21"}
            )
            (vault / "3-Resources" / "broken.md").write_text("---\ntags: [oops\n---\nbody\n")
            await call(s, "sync_vault", {})
            out["health"] = await call(s, "health", {})
        return out

    got = anyio.run(run)
    assert not got["ok"].is_error
    assert got["stale"].is_error and "changed since it was read" in got["stale"].content[0].text
    assert got["watched"] and got["watched"][0]["id"] == "3-Resources/kernel.md"
    assert got["escape"].is_error and "InvalidInput" in got["escape"].content[0].text
    assert got["ingest"].structured_content["added"] == 4
    for name, res in got["refused"].items():
        text = res.content[0].text
        assert res.is_error and "InvalidInput" in text, (name, text[:300])
        assert f"field='{FIELDS.get(name, 'path')}'" in text, (name, text[:300])
        assert len(text) < 1000, name  # a 100 kB argument is not echoed back
    assert "PAI_MEMBRANE_TRANSCRIPT_ROOTS" in got["refused"]["ingest_outside"].content[0].text
    unlinked = got["unlinked"]
    assert not unlinked.is_error  # the note is written ...
    assert "not recorded in the fact graph" in unlinked.structured_content["link_error"]
    assert (vault / unlinked.structured_content["path"]).is_file()
    kinds = {h["kind"] for h in got["search"].structured_content["hits"]}
    assert {"note", "episode"} <= kinds
    pack = got["recall"].structured_content
    assert pack["learnings"] and pack["conversations"] and pack["tokens"] <= 500
    groups = {g["group"] for g in got["timeline"].structured_content["groups"]}
    assert "pai" in groups  # the conversation's project directory
    health = got["health"].structured_content
    assert health["status"] == "degraded"
    assert any("3-Resources/broken.md line" in p for p in health["problems"])
    assert health["details"]["episodes"] == 4
    if "embedding_engines" in health["details"] or os.environ.get("CI") == "true":
        # queries by ONNX Runtime, or the NumPy encoder: the server never loads torch for one
        from pai_membrane.search import onnx_bert

        engine = "onnxruntime" if onnx_bert.available() else "numpy"
        assert health["details"]["embedding_engines"]["queries"] == engine
