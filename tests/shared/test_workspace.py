"""Per-job workspaces vanish on every exit path; orphans are swept."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

from pai_core.workspace import job_workspace, sweep_orphans


def test_removed_after_success(tmp_path: Path) -> None:
    with job_workspace(tmp_path, "plan") as ws:
        (ws / "file").write_text("x")
        assert ws.name.startswith("plan-")
    assert not ws.exists()
    assert list(tmp_path.iterdir()) == []


def test_removed_after_exception(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), job_workspace(tmp_path) as ws:
        (ws / "file").write_text("x")
        raise RuntimeError("boom")
    assert not ws.exists()


def test_removed_after_cancellation(tmp_path: Path) -> None:
    seen: list[Path] = []

    async def run() -> None:
        with anyio.move_on_after(0.05):
            with job_workspace(tmp_path) as ws:
                seen.append(ws)
                await anyio.sleep(10)

    anyio.run(run)
    assert seen and not seen[0].exists()


def test_sweep_removes_dead_owners_and_keeps_live_ones(tmp_path: Path) -> None:
    # A workspace whose owner process has exited.
    code = (
        "import sys; from pathlib import Path; from pai_core.workspace import job_workspace\n"
        "cm = job_workspace(Path(sys.argv[1]), 'dead'); ws = cm.__enter__(); print(ws)\n"
        "import os; os._exit(0)\n"  # exit without cleanup, as a kill -9 would
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True
    )
    dead = Path(out.stdout.strip())
    assert dead.exists()
    with job_workspace(tmp_path, "live") as live:
        removed = sweep_orphans(tmp_path, max_age_s=3600)
        assert removed == [dead]
        assert live.exists() and not dead.exists()


def test_sweep_removes_too_old_even_if_owner_lives(tmp_path: Path) -> None:
    with job_workspace(tmp_path, "old") as ws:
        old = time.time() - 7200
        os.utime(ws, (old, old))
        assert sweep_orphans(tmp_path, max_age_s=3600) == [ws]
