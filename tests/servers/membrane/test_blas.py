"""Search limits NumPy's BLAS to one thread (its products are small; more threads wait on each
other under load), unless the operator set a thread count."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("threadpoolctl")

_PROBE = """
import numpy as np
from threadpoolctl import ThreadpoolController, threadpool_info
np.ones((4, 4)) @ np.ones((4, 4))
blas = [c for c in ThreadpoolController().lib_controllers if c.user_api == "blas"]
if not blas or blas[0].get_num_threads() < 2:
    print("none"); raise SystemExit  # nothing to limit (one core, or no BLAS threadpoolctl sees)

class Probe:
    dim = 384
    def embed(self, texts):
        seen.append(blas[0].get_num_threads())
        return np.ones((len(texts), self.dim), dtype=np.float32) / np.sqrt(self.dim)

import sys, threading
from pathlib import Path
from pai_core.memory.episodes.ingest import EpisodeStore
from pai_core.memory.fulltext import SearchIndex
from pai_core.memory.graph.service import GraphService
from pai_core.memory.graph.sqlite_store import SqliteGraphStore
from pai_membrane.search.service import MemorySearch
db = Path(sys.argv[1])
index = SearchIndex(db)
search = MemorySearch(index, GraphService(SqliteGraphStore(db)), EpisodeStore(index), Probe())
seen = []
worker = threading.Thread(target=lambda: search.search("which host runs the mail relay"))
worker.start(); worker.join()  # tool calls run on worker threads
search.search("and the backup job")
print(seen, blas[0].get_num_threads())
"""


def _run(tmp_path: Path, **env: str) -> str:
    """What the searches saw and what was left after, in a process of their own."""
    clean = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(tmp_path / "m.db")],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    if out.stdout.strip() == "none":
        pytest.skip("BLAS runs on one thread already, or threadpoolctl sees none")
    return out.stdout.strip()


def test_search_runs_blas_on_one_thread(tmp_path: Path) -> None:
    assert _run(tmp_path) == "[1, 1] 1"


def test_an_explicit_thread_count_is_left_alone(tmp_path: Path) -> None:
    assert _run(tmp_path, OPENBLAS_NUM_THREADS="2") == "[2, 2] 2"
