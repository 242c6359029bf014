"""DNS: plan + apply + verify latency for 1 and 100 records in one plan, against the same 100
changes sent as 100 separate `nsupdate` invocations, all against one local Knot primary."""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from pai_core.settings import load_settings  # noqa: E402
from pai_dns.server import build_service  # noqa: E402
from pai_dns.settings import DnsSettings  # noqa: E402
from tests.servers.dns.conftest import make_secret, start_knot  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    runs = 3 if args.quick else 9
    batch = 20 if args.quick else 100
    tmp = Path(tempfile.mkdtemp(prefix="pai-dns-bench-"))
    knot = start_knot(tmp / "knot", make_secret())
    try:
        settings = load_settings(
            DnsSettings,
            tmp / "none.toml",
            zones=["example.test"],
            server="127.0.0.1",
            port=knot.port,
            tsig_key_name="pai-key",
            tsig_secret=knot.secret,
            data_dir=tmp / "data",
            audit_log=tmp / "audit.jsonl",
            max_change_share=1.0,
        )
        svc = build_service(settings)

        def one_plan(n: int, tag: str) -> float:
            changes = [
                {"name": f"b{tag}-{i}", "type": "A", "values": [f"192.0.2.{i % 250 + 1}"]}
                for i in range(n)
            ]
            start = time.perf_counter()
            plan = svc.plan("example.test", changes)
            result = svc.apply(plan["plan_id"])
            elapsed = time.perf_counter() - start
            assert result["verified"], result
            return elapsed

        single = [one_plan(1, f"s{r}") for r in range(runs)]
        bulk = [one_plan(batch, f"m{r}") for r in range(max(3, runs // 3))]
        nsupdate = shutil.which("nsupdate")
        separate: list[float] = []
        if nsupdate:
            keyfile = tmp / "key.conf"
            keyfile.write_text(
                f'key "pai-key" {{ algorithm hmac-sha256; secret "{knot.secret}"; }};\n'
            )
            for r in range(max(1, runs // 3)):
                start = time.perf_counter()
                for i in range(batch):
                    script = (
                        f"server 127.0.0.1 {knot.port}\nzone example.test\n"
                        f"update add n{r}-{i}.example.test. 300 A 192.0.2.{i % 250 + 1}\nsend\n"
                    )
                    subprocess.run(
                        [nsupdate, "-k", str(keyfile)],
                        input=script,
                        text=True,
                        check=True,
                        capture_output=True,
                    )
                separate.append(time.perf_counter() - start)
    finally:
        knot.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    result = {
        "benchmark": "dns",
        "server": "knot",
        "single_record_plan_apply_verify_ms": round(statistics.median(single) * 1000, 1),
        "batch_size": batch,
        "batch_plan_apply_verify_ms": round(statistics.median(bulk) * 1000, 1),
        "separate_nsupdate_total_ms": round(statistics.median(separate) * 1000, 1)
        if separate
        else None,
    }
    if separate:
        result["nsupdate_vs_one_plan"] = round(
            statistics.median(separate) / statistics.median(bulk), 2
        )
    out = HERE / ("results/quick" if args.quick else "results")  # never over the record
    out.mkdir(parents=True, exist_ok=True)
    (out / "dns.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "### DNS: plan + apply (one UPDATE) + verify, local Knot primary",
        "",
        "| what | time (ms, median) |",
        "|---|---:|",
        f"| 1 record, plan + apply + verify | {result['single_record_plan_apply_verify_ms']} |",
        f"| {batch} records in one plan, plan + apply + verify | {result['batch_plan_apply_verify_ms']} |",
    ]
    if separate:
        lines.append(
            f"| the same {batch} as {batch} `nsupdate` runs (no verification) | "
            f"{result['separate_nsupdate_total_ms']} |"
        )
        lines += [
            "",
            f"One verified plan is {result['nsupdate_vs_one_plan']}× faster than "
            f"{batch} separate nsupdate invocations, and atomic.",
        ]
    (out / "dns.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
