"""Full backfill against the sandbox with a 25 requests/s ceiling: achieved rate and peak memory by account size.

    .venv/bin/python bench/backfill.py [--sizes 10000 50000] [--max-rps 25]

For each size: a fresh sandbox process gets N customers (one in five with a monthly subscription, which brings
its invoice), created directly through the SDK from threads; then `python -m lib sync --full` for customers,
subscriptions and invoices runs in a child process with STRIPE_REQUESTS_PER_SECOND = the ceiling and the
sandbox's `max_rps` fault set to the same ceiling (answering 429 above it, as Stripe does). The child reports
its own peak RSS. Payment methods are left out: Stripe lists them per customer (one request each), which at
25 requests/s is 33 minutes for 50,000 customers and measures nothing the list resources do not.
Goals: achieved successful requests/s ÷ ceiling ≥ 0.9; peak memory at the largest size within 20% of the
smallest. Prints one JSON object on its last line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import stripe  # noqa: E402

from sandbox.process import free_port, wait_http_ok  # noqa: E402

KEY = "sk_test_bench_backfill"
RESOURCES = ["customers", "subscriptions", "invoices"]


def control(base: str, method: str, path: str, body: dict | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{base}/_sandbox/{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None


def seed(base: str, customers: int, workers: int = 16) -> float:
    client = stripe.StripeClient(KEY, base_addresses={"api": base}, max_network_retries=2)
    product = client.v1.products.create({"name": "Bench plan"})
    price = client.v1.prices.create({"product": product.id, "currency": "usd", "unit_amount": 1900,
                                     "recurring": {"interval": "month"}}).id
    started = time.monotonic()

    def one(i: int) -> None:
        c = client.v1.customers.create({"email": f"bench{i}@example.com", "name": f"Bench Customer {i}",
                                        "metadata": {"i": str(i)}})
        if i % 5 == 0:
            pm = client.v1.payment_methods.attach("pm_card_visa", {"customer": c.id})
            client.v1.subscriptions.create({"customer": c.id, "default_payment_method": pm.id,
                                            "items": [{"price": price}]})

    with ThreadPoolExecutor(workers) as pool:
        for _ in pool.map(one, range(customers), chunksize=64):
            pass
    return time.monotonic() - started


def child(args: argparse.Namespace) -> None:
    """Run inside the measured process: the sync itself, then its own peak RSS."""
    import threading

    from lib.sync import run_sync

    samples: list[tuple[float, float]] = []  # (seconds, RSS MB) every 2 s: where memory goes, if it grows
    done = threading.Event()

    def sample() -> None:
        started = time.monotonic()
        while not done.wait(2.0):
            with open("/proc/self/status") as f:
                rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))
            samples.append((round(time.monotonic() - started, 1), round(rss / 1024, 1)))

    threading.Thread(target=sample, daemon=True).start()
    result = run_sync(mode="full", resources=RESOURCES)
    done.set()
    # VmHWM, not ru_maxrss: Linux carries the parent's RSS at fork into a child's ru_maxrss across exec.
    with open("/proc/self/status") as f:
        peak_kb = next(int(line.split()[1]) for line in f if line.startswith("VmHWM"))
    print(json.dumps({"status": result.status, "error": result.error, "counts": result.counts,
                      "requests": result.requests, "seconds": round(result.seconds, 2),
                      "fetch_seconds": round(result.timing.get("fetch", 0), 1),
                      "write_seconds": round(result.timing.get("write", 0), 1),
                      "peak_rss_mb": round(peak_kb / 1024, 1), "rss_samples_mb": samples[::5]}))


def measure(size: int, max_rps: float) -> dict[str, Any]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    sandbox = subprocess.Popen([sys.executable, "-m", "sandbox", "--port", str(port)], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http_ok(base + "/_sandbox/health", timeout=30, proc=sandbox)
        seed_seconds = seed(base, size)
        control(base, "DELETE", "requests")
        control(base, "POST", "faults", {"max_rps": max_rps})
        with tempfile.TemporaryDirectory() as tmp:
            env = {**os.environ, "STRIPE_API_KEY": KEY, "STRIPE_API_BASE": base,
                   "DATABASE_URL": f"sqlite:///{tmp}/cache.db", "STRIPE_REQUESTS_PER_SECOND": str(max_rps)}
            started = time.monotonic()
            done = subprocess.run([sys.executable, __file__, "--child"], cwd=ROOT, env=env, capture_output=True,
                                  text=True, timeout=3600)
            wall = time.monotonic() - started
        if done.returncode != 0:
            raise SystemExit(f"sync child failed: {done.stderr[-2000:]}")
        out = json.loads(done.stdout.strip().splitlines()[-1])
        log = control(base, "GET", "requests?since=0")["data"]
        ok = [r for r in log if r["status"] == 200]
        limited = sum(1 for r in log if r["status"] == 429)
        span = (max(r["time"] for r in ok) - min(r["time"] for r in ok)) if len(ok) > 1 else wall
        achieved = len(ok) / span if span else 0.0
        return {"customers": size, "seed_seconds": round(seed_seconds, 1), **out,
                "successful_requests": len(ok), "answered_429": limited,
                "achieved_rps": round(achieved, 2), "fraction_of_ceiling": round(achieved / max_rps, 3)}
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000])
    ap.add_argument("--max-rps", type=float, default=25.0)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    runs = []
    for size in args.sizes:
        runs.append(measure(size, args.max_rps))
        print(json.dumps(runs[-1]), file=sys.stderr)
    mems = [r["peak_rss_mb"] for r in runs]
    fractions = [r["fraction_of_ceiling"] for r in runs]
    growth = (max(mems) - min(mems)) / min(mems) if mems else 0.0
    print(json.dumps({"bench": "backfill", "max_rps": args.max_rps, "runs": runs,
                      "min_fraction_of_ceiling": min(fractions), "peak_rss_growth": round(growth, 3),
                      "goal_fraction": 0.9, "goal_rss_growth": 0.2,
                      "goal_met": min(fractions) >= 0.9 and growth <= 0.2}))


if __name__ == "__main__":
    main()
