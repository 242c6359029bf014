"""Cold start over stdio: spawn → `initialize` reply, and → `tools/list` reply.

Compared in the same run, interleaved, with the SDK floor (a hello-world ``MCPServer``) and
the reference Node server ``@modelcontextprotocol/server-memory`` run by ``node``. The client
is a minimal JSON-RPC writer/reader over pipes, so the numbers are the servers' own.
Target: every PAI server within 1.15x of the SDK floor (medians).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent
SERVERS = ["membrane", "gitlab", "gpu_jobs", "firewall", "dns", "mail", "verify"]
NODE_MEMORY = ROOT / "tests/clients/node_modules/@modelcontextprotocol/server-memory/dist/index.js"
TARGET = 1.15

INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "coldstart", "version": "0"},
    },
}


def measure(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    assert proc.stdin and proc.stdout
    proc.stdin.write((json.dumps(INIT) + "\n").encode())
    proc.stdin.flush()
    json.loads(proc.stdout.readline())
    t_init = time.perf_counter() - start
    proc.stdin.write(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')
    proc.stdin.write(b'{"jsonrpc":"2.0","id":2,"method":"tools/list"}\n')
    proc.stdin.flush()
    while True:
        reply = json.loads(proc.stdout.readline())
        if reply.get("id") == 2:
            break
    t_list = time.perf_counter() - start
    proc.stdin.close()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    proc.stdout.close()
    return t_init, t_list


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--quick", action="store_true", help="3 runs (smoke)")
    args = parser.parse_args()
    runs = 3 if args.quick else max(5, args.runs)
    tmp = Path(tempfile.mkdtemp(prefix="pai-coldstart-"))
    env = {
        **os.environ,
        "PAI_HOME": str(tmp / "pai"),
        "PAI_CONFIG": str(tmp / "none.toml"),
        "MEMORY_FILE_PATH": str(tmp / "memory.jsonl"),
    }
    subjects: dict[str, list[str]] = {"sdk-floor": [sys.executable, str(HERE / "hello_server.py")]}
    for name in SERVERS:
        subjects[f"pai-{name}"] = [str(BIN / f"pai-{name.replace('_', '-')}")]
    if NODE_MEMORY.exists():
        subjects["node server-memory"] = ["node", str(NODE_MEMORY)]
    samples: dict[str, list[tuple[float, float]]] = {k: [] for k in subjects}
    for cmd in subjects.values():  # one warm-up each (page cache, .pyc)
        measure(cmd, env)
    for _ in range(runs):
        for label, cmd in subjects.items():
            samples[label].append(measure(cmd, env))
    floor_init = statistics.median(s[0] for s in samples["sdk-floor"])
    floor_list = statistics.median(s[1] for s in samples["sdk-floor"])
    rows = []
    for label, values in samples.items():
        init = statistics.median(v[0] for v in values)
        lst = statistics.median(v[1] for v in values)
        rows.append(
            {
                "server": label,
                "initialize_ms": round(init * 1000, 1),
                "tools_list_ms": round(lst * 1000, 1),
                "vs_floor_initialize": round(init / floor_init, 3),
                "vs_floor_tools_list": round(lst / floor_list, 3),
            }
        )
    pai_rows = [r for r in rows if r["server"].startswith("pai-")]
    worst = max(max(r["vs_floor_initialize"], r["vs_floor_tools_list"]) for r in pai_rows)
    result = {
        "benchmark": "coldstart",
        "runs": runs,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "target_vs_floor": TARGET,
        "worst_pai_vs_floor": worst,
        "meets_target": worst <= TARGET,
        "rows": rows,
    }
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "coldstart.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"### Cold start over stdio (median of {runs} runs, interleaved)",
        "",
        "| server | initialize (ms) | tools/list (ms) | × SDK floor |",
        "|---|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['server']} | {r['initialize_ms']} | {r['tools_list_ms']} | "
            f"{r['vs_floor_initialize']} / {r['vs_floor_tools_list']} |"
        )
    verdict = "meets" if worst <= TARGET else "MISSES"
    lines += ["", f"Worst PAI server: {worst}× the SDK floor ({verdict} the ≤ {TARGET}× target)."]
    (out / "coldstart.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
