"""Run every benchmark (``benchmarks/*_bench.py``) and summarise them in the README.

Each benchmark writes ``benchmarks/results/<name>.json`` and ``<name>.md``. This runner calls
them one after another (they measure time: never in parallel), then replaces the block between
``<!-- bench:start -->`` and ``<!-- bench:end -->`` in README.md with their summaries.

    python benchmarks/run.py            # everything, full size
    python benchmarks/run.py --quick    # small sizes, a smoke run (into results/quick/)
    python benchmarks/run.py coldstart  # only the named benchmarks
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    parser.add_argument("--no-readme", action="store_true", help="do not update README.md")
    args = parser.parse_args()
    scripts = sorted(HERE.glob("*_bench.py"))
    if args.names:
        scripts = [s for s in scripts if s.stem.removesuffix("_bench") in args.names]
    failed: list[str] = []
    for bench in scripts:
        name = bench.stem.removesuffix("_bench")
        print(f"== {name}", flush=True)
        started = time.monotonic()
        cmd = [sys.executable, str(bench), *(["--quick"] if args.quick else [])]
        code = subprocess.call(cmd, cwd=ROOT)
        print(f"== {name}: exit {code} after {time.monotonic() - started:.0f}s", flush=True)
        if code != 0:
            failed.append(name)
    if not args.no_readme and not args.quick:
        update_readme()
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def update_readme() -> None:
    readme = ROOT / "README.md"
    text = readme.read_text()
    if START not in text or END not in text:
        return
    parts = []
    for md in sorted(RESULTS.glob("*.md")):
        body = md.read_text().strip()
        parts.append(body + f"\n\n(full results: `benchmarks/results/{md.stem}.json`)")
    block = "\n\n".join(parts) if parts else "_No benchmark results yet: run `make bench`._"
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{START}\n{block}\n{END}{tail}")


if __name__ == "__main__":
    sys.exit(main())
