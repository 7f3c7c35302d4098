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

    .venv/bin/python bench/backfill.py --demo 2000 [--rounds 3] [--fault-rps 50] [--no-faults] [--no-check]

Requests per 1,000 objects on the demo account (`sandbox.seed`, 2,000 customers, seed 7), counted from the
sandbox's request log (`/_sandbox/requests`): per round a fresh SQLite cache gets pass 1 (customers,
subscriptions, invoices: what the pages show) and then pass 2 (payment_methods: every customer's card list),
each `run_sync(mode="full")` in a child process. Objects = customers + subscriptions + invoices + cards
received. Pass 1 is also timed at a 25 requests/s budget with the sandbox answering 429 above it. Round 1
compares the cache with the sandbox field by field (bench/fidelity.py) after each pass. Then a full
backfill (both passes) at `--fault-rps`, clean and with 20% 429 + 10% 500 + 50–200 ms latency: the faulted
time ÷ the clean one (goal ≤ 2) and the differences after it. Medians over the rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import re
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


def start_sandbox() -> tuple[subprocess.Popen, str]:
    """A fresh sandbox process on a free port, answering; (process, base URL)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    sandbox = subprocess.Popen([sys.executable, "-m", "sandbox", "--port", str(port)], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_http_ok(base + "/_sandbox/health", timeout=30, proc=sandbox)
    return sandbox, base


def measure(size: int, max_rps: float) -> dict[str, Any]:
    sandbox, base = start_sandbox()
    try:
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


PASS_1 = ["customers", "subscriptions", "invoices"]
PASS_2 = ["payment_methods"]
FAULTS = {"rate_limit": 0.2, "server_error": 0.1, "latency_ms": [50, 200]}


def demo_child(resources: list[str]) -> None:
    """Inside the measured process: one full sync of `resources`; its result as JSON."""
    from lib.sync import run_sync

    result = run_sync(mode="full", resources=resources)
    print(json.dumps({"status": result.status, "error": result.error, "fetched": result.fetched,
                      "requests": result.requests, "seconds": round(result.seconds, 2)}))


def _sync(base: str, db_url: str, resources: list[str], rps: float) -> tuple[dict[str, Any], int, float]:
    """One child sync; (its result, requests the sandbox logged for it, wall seconds)."""
    before = control(base, "GET", "requests?since=999999999999")["last_seq"]
    env = {**os.environ, "STRIPE_API_KEY": KEY, "STRIPE_API_BASE": base, "DATABASE_URL": db_url,
           "STRIPE_REQUESTS_PER_SECOND": str(rps)}
    started = time.monotonic()
    done = subprocess.run([sys.executable, __file__, "--demo-child", ",".join(resources)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=3600)
    wall = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"sync child failed: {done.stderr[-2000:]}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    if out["status"] != "succeeded":
        raise SystemExit(f"sync failed: {out['error']}")
    after = control(base, "GET", "requests?since=999999999999")["last_seq"]
    return out, after - before, wall


def _differences(base: str, db_url: str, *, all_cards: bool) -> list[str]:
    from sqlalchemy import create_engine

    from bench.fidelity import differences

    client = stripe.StripeClient(KEY, base_addresses={"api": base}, max_network_retries=2)
    engine = create_engine(db_url.replace("sqlite:///", "sqlite:///", 1))
    try:
        return differences(client, engine, all_cards=all_cards)
    finally:
        engine.dispose()


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def demo(args: argparse.Namespace) -> dict[str, Any]:
    sandbox, base = start_sandbox()
    rounds: list[dict[str, Any]] = []
    try:
        subprocess.run([sys.executable, "-m", "sandbox.seed", "--api-base", base, "--api-key", KEY, "--customers",
                        str(args.demo), "--seed", "7", "--reset"], cwd=ROOT, check=True, capture_output=True)
        for n in range(args.rounds):
            with tempfile.TemporaryDirectory() as tmp:
                db_url = f"sqlite:///{tmp}/cache.db"
                p1, req1, wall1 = _sync(base, db_url, PASS_1, 500)
                check_passes = args.check and not args.check_only_faulted and n == 0
                diff1 = _differences(base, db_url, all_cards=False) if check_passes else None
                p2, req2, wall2 = _sync(base, db_url, PASS_2, 500)
                diff2 = _differences(base, db_url, all_cards=True) if check_passes else None
            objects = sum(p1["fetched"].get(r, 0) for r in PASS_1) + p2["fetched"].get("payment_methods", 0)
            with tempfile.TemporaryDirectory() as tmp:  # pass 1 at Stripe's test-mode limit
                control(base, "POST", "faults", {"max_rps": 25})
                _, _, wall25 = _sync(base, f"sqlite:///{tmp}/cache.db", PASS_1, 25)
                control(base, "POST", "faults", {})
            row: dict[str, Any] = {
                "objects": objects, "pass1_requests": req1, "pass2_requests": req2,
                "pass1_per_1000": round(1000 * req1 / objects, 1),
                "passes_1_2_per_1000": round(1000 * (req1 + req2) / objects, 1),
                "pass1_seconds_at_500": round(wall1, 1), "pass2_seconds_at_500": round(wall2, 1),
                "pass1_seconds_at_25": round(wall25, 1)}
            if diff1 is not None:
                row["pass1_differences"] = len(diff1)
                row["passes_1_2_differences"] = len(diff2 or [])
                row["difference_sample"] = (diff1 + (diff2 or []))[:5]
            if args.faults:
                with tempfile.TemporaryDirectory() as tmp:
                    _, clean_req, clean = _sync(base, f"sqlite:///{tmp}/cache.db", PASS_1 + PASS_2, args.fault_rps)
                with tempfile.TemporaryDirectory() as tmp:
                    control(base, "POST", "faults", {**FAULTS, "seed": n + 1})
                    try:
                        _, fault_req, faulted = _sync(base, f"sqlite:///{tmp}/cache.db", PASS_1 + PASS_2,
                                                      args.fault_rps)
                    finally:
                        control(base, "POST", "faults", {})
                    if args.check and n == 0:
                        faulted_diff = _differences(base, f"sqlite:///{tmp}/cache.db", all_cards=True)
                        row["faulted_differences"] = len(faulted_diff)
                        row["faulted_difference_sample"] = faulted_diff[:5]
                row.update({"clean_full_seconds": round(clean, 1), "faulted_full_seconds": round(faulted, 1),
                            "clean_full_requests": clean_req, "faulted_full_requests": fault_req,
                            "fault_ratio": round(faulted / clean, 2)})
            rounds.append(row)
            print(json.dumps(row), file=sys.stderr)
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)
    keys = [k for k in rounds[0] if isinstance(rounds[0][k], (int, float)) and all(k in r for r in rounds)]
    med = {k: _median([r[k] for r in rounds]) for k in keys}
    goals = {"pass1_per_1000": med["pass1_per_1000"] <= 15, "passes_1_2_per_1000": med["passes_1_2_per_1000"] <= 150,
             "pass1_seconds_at_25": med["pass1_seconds_at_25"] <= 15}
    if "fault_ratio" in med:
        goals["fault_ratio"] = med["fault_ratio"] <= 2
    if "pass1_differences" in rounds[0] or "faulted_differences" in rounds[0]:
        goals["zero_differences"] = (rounds[0].get("pass1_differences", 0) == 0
                                     and rounds[0].get("passes_1_2_differences", 0) == 0
                                     and rounds[0].get("faulted_differences", 0) == 0)
    return {"bench": "backfill-demo", "customers": args.demo, "rounds": len(rounds), "fault_rps": args.fault_rps,
            "faults": FAULTS, "median": med, "runs": rounds, "goals": goals, "goal_met": all(goals.values())}


ID_SEGMENT = re.compile(r"(cus|sub|in|pi|pm|evt|prod|price|si|we|inpay|ch|il)_[A-Za-z0-9]+")


def _per_path(log: list[dict[str, Any]]) -> dict[str, int]:
    """Requests per path (`/v1/customers`, `/v1/invoice_payments`, …; ids folded to `{id}`), most first."""
    out: dict[str, int] = {}
    for r in log:
        key = "/".join("{id}" if ID_SEGMENT.fullmatch(p) else p for p in r["path"].split("/"))
        out[key] = out.get(key, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def model(args: argparse.Namespace) -> dict[str, Any]:
    """Pass 1 on the demo account of `--model` customers at `--model-rps` (the sandbox answering 429 above it),
    counted per path from the sandbox's log, then scaled to `--target-customers` / `--target-invoices`: each
    list's pages in proportion to its objects (customers' to customers, subscriptions' to subscriptions —
    one per customer in the target —, invoices' and the open invoice payments' to invoices), the rest (the
    newest event, products, webhook endpoints) as they are. Modelled time = scaled requests ÷ the budget,
    and ÷ the rate the real run achieved (on a loaded host, bound by each lane's round trips)."""
    sandbox, base = start_sandbox()
    try:
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "sandbox.seed", "--api-base", base, "--api-key", KEY, "--customers",
                        str(args.model), "--seed", "7", "--reset"], cwd=ROOT, check=True, capture_output=True)
        seed_seconds = time.monotonic() - started
        control(base, "DELETE", "requests")
        control(base, "POST", "faults", {"max_rps": args.model_rps})
        with tempfile.TemporaryDirectory() as tmp:
            out, requests, wall = _sync(base, f"sqlite:///{tmp}/cache.db", PASS_1, args.model_rps)
        control(base, "POST", "faults", {})
        log = control(base, "GET", "requests?since=0")["data"]
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)
    paths = _per_path(log)
    ok = [r for r in log if r["status"] == 200]
    span = max(r["time"] for r in ok) - min(r["time"] for r in ok)
    achieved = len(ok) / span
    fetched = out["fetched"]
    factor = {"/v1/customers": args.target_customers / fetched["customers"],
              "/v1/subscriptions": args.target_customers / fetched["subscriptions"],
              "/v1/invoices": args.target_invoices / fetched["invoices"],
              "/v1/invoice_payments": args.target_invoices / fetched["invoices"]}
    scaled = {p: round(n * factor.get(p, 1.0)) for p, n in paths.items()}
    total = sum(scaled.values())
    return {"bench": "backfill-model", "customers": args.model, "fetched": fetched, "requests": requests,
            "per_path": paths, "seconds": round(wall, 1), "sync_seconds": out["seconds"],
            "achieved_rps": round(achieved, 1), "budget_rps": args.model_rps,
            "answered_429": sum(1 for r in log if r["status"] == 429), "seed_seconds": round(seed_seconds, 1),
            "target": {"customers": args.target_customers, "invoices": args.target_invoices},
            "scaled_per_path": scaled, "scaled_requests": total,
            "modelled_seconds_at_budget": round(total / args.model_rps, 1),
            "modelled_seconds_at_achieved": round(total / achieved, 1),
            "load_average_1m": round(os.getloadavg()[0], 2),
            "goal_seconds": 120, "goal_met": total / args.model_rps <= 120}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000])
    ap.add_argument("--max-rps", type=float, default=25.0)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--demo", type=int, default=0, help="requests per 1,000 objects on the demo account of N customers")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--fault-rps", type=float, default=50.0)
    ap.add_argument("--no-faults", dest="faults", action="store_false")
    ap.add_argument("--no-check", dest="check", action="store_false")
    ap.add_argument("--check-only-faulted", action="store_true",
                    help="compare only the faulted backfill's cache with the sandbox (the slow part: ~13,000 reads)")
    ap.add_argument("--demo-child", help=argparse.SUPPRESS)
    ap.add_argument("--model", type=int, default=0,
                    help="pass 1 on the demo account of N customers, scaled to --target-customers/--target-invoices")
    ap.add_argument("--model-rps", type=float, default=80.0)
    ap.add_argument("--target-customers", type=int, default=100_000)
    ap.add_argument("--target-invoices", type=int, default=400_000)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    if args.demo_child:
        demo_child(args.demo_child.split(","))
        return
    if args.demo:
        print(json.dumps(demo(args)))
        return
    if args.model:
        print(json.dumps(model(args)))
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
