"""Benchmark: seed 10,000 customers (one subscription each, 12 months of history) into a fresh sandbox.

    .venv/bin/python bench/seed.py [--customers 10000] [--seed 7]

Starts its own sandbox process on a free port, runs the demo seeder against it through the SDK, and reads
the sandbox's peak resident memory from /proc/<pid>/status (VmHWM). The last line is one JSON object:
{"customers", "subscriptions", "seconds", "sandbox_peak_rss_mb", "goal_seconds", "ok", ...}.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sandbox.process import SandboxServer  # noqa: E402
from sandbox.seed import Seeder, plan  # noqa: E402

GOAL_SECONDS = 60


def peak_rss_mb(pid: int) -> float:
    """VmHWM: the most resident memory the process has used so far (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError("VmHWM not found")


def cpu_seconds(pid: int) -> float:
    """User + system CPU the process has used (/proc/<pid>/stat fields 14 and 15, in clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return round((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), 1)


def load_average() -> float:
    return round(os.getloadavg()[0], 1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--customers", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--workers", type=int, default=8)
    args = ap.parse_args()

    server = SandboxServer.start()
    pid = server.proc.pid
    try:
        p = plan(args.customers, args.seed)
        seeder = Seeder(server.url, api_key=server.key, workers=args.workers,
                        log=lambda line: print(line, flush=True))
        load_before = load_average()
        sandbox_cpu0 = cpu_seconds(pid)
        client_cpu0 = time.process_time()
        started = time.monotonic()
        result = seeder.run(p)
        seconds = round(time.monotonic() - started, 1)
        rss = peak_rss_mb(pid)
        sandbox_cpu = round(cpu_seconds(pid) - sandbox_cpu0, 1)
        client_cpu = round(time.process_time() - client_cpu0, 1)
        client_rss = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    finally:
        server.stop()
    subs = sum(result.statuses.values())
    print(json.dumps({
        "customers": len(result.customer_ids),
        "subscriptions": subs,
        "subscriptions_by_status": dict(sorted(result.statuses.items())),
        "requests": result.requests,
        "seconds": seconds,
        "customers_per_second": round(len(result.customer_ids) / seconds, 1) if seconds else None,
        "sandbox_peak_rss_mb": rss,
        "sandbox_cpu_seconds": sandbox_cpu,
        "client_cpu_seconds": client_cpu,
        "client_peak_rss_mb": client_rss,
        "load_average_1m": [load_before, load_average()],
        "cores": os.cpu_count(),
        "goal_seconds": GOAL_SECONDS,
        "ok": seconds < GOAL_SECONDS and len(result.customer_ids) == args.customers and subs == args.customers,
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
