"""Benchmark: what the Stripe sandbox itself costs, apart from the seeder and the machine's other load.

    .venv/bin/python bench/sandbox.py [--customers 2000] [--months 12] [--workers 4]

Starts its own sandbox, sets its clock back `--months`, creates customers through the SDK (one request each
with a test card attached, one subscription each; every 10th card declines at renewal), advances the clock
`--months` (renewals, dunning retries), then reads invoices and events the way the sync does. Reports wall
seconds and the sandbox's own CPU seconds (from /proc, so other load on the machine does not count), per
phase, and its peak memory. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import stripe

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sandbox.process import SandboxServer  # noqa: E402

DAY = 86400


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=2000)
    ap.add_argument("--months", type=int, default=12)
    ap.add_argument("--workers", type=int, default=4)
    args = ap.parse_args()

    server = SandboxServer.start()
    assert server.proc is not None
    pid = server.proc.pid
    result: dict[str, object] = {"customers": args.customers, "months": args.months}
    try:
        server.control("POST", "clock/set", {"now": time.time() - args.months * 30.5 * DAY})
        client = stripe.StripeClient(server.key, base_addresses={"api": server.url}, max_network_retries=2)
        price = client.v1.prices.create(params={"currency": "usd", "unit_amount": 1900,
                                                "recurring": {"interval": "month"},
                                                "product_data": {"name": "Bench"}})

        def one(i: int) -> None:
            token = "pm_card_chargeCustomerFail" if i % 10 == 9 else "pm_card_visa"
            cus = client.v1.customers.create(params={
                "email": f"bench{i}@example.com", "name": f"Bench {i}", "payment_method": token,
                "invoice_settings": {"default_payment_method": token}})
            client.v1.subscriptions.create(params={"customer": cus.id, "items": [{"price": price.id}]})

        cpu0, t0 = cpu_seconds(pid), time.monotonic()
        with ThreadPoolExecutor(args.workers) as pool:
            list(pool.map(one, range(args.customers)))
        requests = 2 * args.customers + 1
        result["create_seconds"] = round(time.monotonic() - t0, 2)
        result["create_requests"] = requests
        result["sandbox_cpu_ms_per_request"] = round((cpu_seconds(pid) - cpu0) / requests * 1000, 3)

        cpu0, t0 = cpu_seconds(pid), time.monotonic()
        ran = server.control("POST", "clock/advance", {"seconds": args.months * 30.5 * DAY})["ran"]
        result["advance_seconds"] = round(time.monotonic() - t0, 2)
        result["advance_sandbox_cpu_seconds"] = round(cpu_seconds(pid) - cpu0, 2)
        result["timers_run"] = ran

        t0 = time.monotonic()
        open_invoices = sum(1 for _ in client.v1.invoices.list(params={"status": "open", "limit": 100})
                            .auto_paging_iter())
        result["open_invoices"] = open_invoices
        result["list_open_invoices_seconds"] = round(time.monotonic() - t0, 2)
        cpu0, t0 = cpu_seconds(pid), time.monotonic()
        events = sum(1 for _ in client.v1.events.list(params={"limit": 100}).auto_paging_iter())
        result["events_kept"] = events
        result["list_all_events_seconds"] = round(time.monotonic() - t0, 2)
        result["list_all_events_sandbox_cpu_seconds"] = round(cpu_seconds(pid) - cpu0, 2)
        t0 = time.monotonic()
        for _ in range(20):
            client.v1.events.list(params={"limit": 100, "type": "invoice.payment_failed"})
        result["events_by_type_ms"] = round((time.monotonic() - t0) / 20 * 1000, 1)
        result["sandbox_peak_rss_mb"] = peak_rss_mb(pid)
        result["load_average_1m"] = round(os.getloadavg()[0], 1)
        result["cores"] = os.cpu_count()
    finally:
        server.stop()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
