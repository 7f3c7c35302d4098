"""The always-on worker's memory over many cycles: is its resident set flat?

    .venv/bin/python bench/worker_rss.py [--cycles 1000] [--customers 200] [--interval 0.05] [--samples 20]

A fresh sandbox with the demo account (`sandbox.seed --customers N`, its webhook endpoint pointing nowhere),
a SQLite cache filled by `python -m lib sync --full`, then `python -m lib worker` with
WORKER_INTERVAL_SECONDS = `--interval`: each cycle is a whole incremental sync (the newest event, each
resource's events since its cursor, the webhook endpoints), and a thread renames a customer through the SDK
every half second, so cycles apply real events and write pages. The worker's resident memory (`VmRSS` from
/proc, and its own `process_resident_memory_bytes`) is sampled every cycles/`--samples` cycles, read from its
`billing_sync_runs_total`. Reported: RSS after the first 10% of cycles (the warm-up: imports, caches,
SQLite page cache), at the middle and at the end; the change from warm-up to end (goal within ±10%); and the
least-squares slope over the samples after warm-up, in MB per 1,000 cycles.

Prints one JSON object on its last line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.freshness import metric, start_worker, stop  # noqa: E402
from sandbox.process import SandboxServer  # noqa: E402


def vm_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))
    return kb / 1024


def slope_per_1000(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (cycle, MB) points, in MB per 1,000 cycles."""
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((x - mx) ** 2 for x, _ in points)
    return 1000 * sum((x - mx) * (y - my) for x, y in points) / var if var else 0.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cycles", type=int, default=1000)
    ap.add_argument("--customers", type=int, default=200)
    ap.add_argument("--interval", type=float, default=0.05)
    ap.add_argument("--samples", type=int, default=20)
    args = ap.parse_args()

    sandbox = SandboxServer.start()
    worker = None
    stop_changes = threading.Event()
    try:
        subprocess.run([sys.executable, "-m", "sandbox.seed", "--api-base", sandbox.url, "--api-key", sandbox.key,
                        "--customers", str(args.customers), "--seed", "7", "--reset",
                        "--webhook-url", "http://127.0.0.1:9/webhooks/stripe"],
                       cwd=ROOT, check=True, capture_output=True)
        with tempfile.TemporaryDirectory() as tmp:
            env = {**os.environ, "STRIPE_API_KEY": sandbox.key, "STRIPE_API_BASE": sandbox.url,
                   "DATABASE_URL": f"sqlite:///{tmp}/cache.db", "STRIPE_REQUESTS_PER_SECOND": "100"}
            subprocess.run([sys.executable, "-m", "lib", "sync", "--full", "--quiet"], cwd=ROOT, env=env,
                           check=True, capture_output=True)
            ids = [c.id for c in sandbox.client.v1.customers.list({"limit": 20}).data]

            def changes() -> None:
                i = 0
                while not stop_changes.wait(0.5):
                    sandbox.client.v1.customers.update(ids[i % len(ids)], {"name": f"Worker RSS {i}"})
                    i += 1

            worker, base = start_worker(env, args.interval)
            threading.Thread(target=changes, daemon=True).start()
            started = time.monotonic()
            every = max(1, args.cycles // args.samples)
            samples: list[dict[str, float]] = []
            target = every
            while target <= args.cycles:
                while (cycles := metric(base, "billing_sync_runs_total")) < target:
                    if worker.poll() is not None:
                        raise SystemExit(f"the worker exited with {worker.returncode}")
                    time.sleep(0.05)
                samples.append({"cycle": cycles, "vm_rss_mb": round(vm_rss_mb(worker.pid), 2),
                                "metric_rss_mb": round(metric(base, "process_resident_memory_bytes") / 2**20, 2),
                                "seconds": round(time.monotonic() - started, 1)})
                print(json.dumps(samples[-1]), file=sys.stderr)
                target += every
            failed = metric(base, "billing_sync_errors_total")
            stop_changes.set()
    finally:
        stop_changes.set()
        if worker is not None and worker.poll() is None:
            stop(worker)
        sandbox.stop()

    warm = next(s for s in samples if s["cycle"] >= args.cycles * 0.1)
    middle = min(samples, key=lambda s: abs(s["cycle"] - args.cycles / 2))
    end = samples[-1]
    after_warmup = [(s["cycle"], s["vm_rss_mb"]) for s in samples if s["cycle"] >= warm["cycle"]]
    change = (end["vm_rss_mb"] - warm["vm_rss_mb"]) / warm["vm_rss_mb"]
    out = {"bench": "worker_rss", "cycles": int(end["cycle"]), "interval_s": args.interval,
           "customers": args.customers, "failed_runs": int(failed), "seconds": end["seconds"],
           "rss_mb_first_sample": samples[0]["vm_rss_mb"], "rss_mb_after_warmup": warm["vm_rss_mb"],
           "rss_mb_middle": middle["vm_rss_mb"], "rss_mb_end": end["vm_rss_mb"],
           "rss_change_after_warmup": round(change, 4),
           "slope_mb_per_1000_cycles": round(slope_per_1000(after_warmup), 2),
           "load_average_1m": round(os.getloadavg()[0], 2), "samples": samples}
    out["goal_met"] = abs(change) <= 0.10
    print(json.dumps(out))


if __name__ == "__main__":
    main()
