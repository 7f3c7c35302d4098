"""Bulk portal links: time to make 'update payment method' links for N failed invoices at the request budget.

Starts its own sandbox process (faults: max_rps = the budget, so going over it would show as 429s) and a
throw-away SQLite cache, seeds N customers through the SDK with one failed invoice each, runs
`lib.portal.bulk_links` as a finance user and prints ONE JSON object on its last line.

    .venv/bin/python bench/portal_bulk.py [--invoices 200] [--budget 20] [--latency-ms 0]
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def cache_failed_invoice(session: Any, customer_id: str, n: int) -> str:
    """Cache customer `n` (its Stripe id) with one open invoice whose payment failed; returns the invoice id."""
    from lib.models import Customer, Invoice, utcnow

    now = utcnow()
    session.add(Customer(id=customer_id, name=f"Bench {n}", email=f"b{n}@example.com", currency="usd", created=now))
    invoice = Invoice(id=f"in_bench{n:08d}", customer_id=customer_id, status="open", currency="usd",
                      amount_due=1000 + n, amount_paid=0, amount_remaining=1000 + n, total=1000 + n,
                      attempt_count=1, attempted=True, created=now, decline_code="insufficient_funds",
                      failure_code="card_declined", next_payment_attempt=now + timedelta(days=3))
    session.add(invoice)
    session.commit()
    return invoice.id


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--invoices", type=int, default=200)
    ap.add_argument("--budget", type=float, default=20.0, help="STRIPE_REQUESTS_PER_SECOND (20 = test-mode default)")
    ap.add_argument("--latency-ms", type=int, default=0, help="sandbox latency per request, to mimic real Stripe")
    args = ap.parse_args()

    from sandbox.process import SandboxServer

    sandbox = SandboxServer.start()
    tmp = tempfile.mkdtemp(prefix="bench-portal-")
    try:
        os.environ.update({
            "STRIPE_API_KEY": sandbox.key, "STRIPE_API_BASE": sandbox.url,
            "DATABASE_URL": f"sqlite:///{tmp}/cache.db", "STRIPE_REQUESTS_PER_SECOND": str(args.budget),
        })
        from sqlmodel import Session

        from lib import portal
        from lib.auth import User
        from lib.config import get_settings
        from lib.db import get_engine, migrate

        get_settings.cache_clear()
        migrate()
        engine = get_engine()
        sandbox.reset()
        sandbox.client.v1.billing_portal.configurations.create(
            params={"features": {"payment_method_update": {"enabled": True}}})
        with Session(engine, expire_on_commit=False) as session:
            ids = []
            for i in range(args.invoices):
                cust = sandbox.client.v1.customers.create(params={"name": f"Bench {i}", "email": f"b{i}@example.com"})
                ids.append(cache_failed_invoice(session, cust.id, i))
            faults: dict = {"max_rps": args.budget}
            if args.latency_ms:
                faults["latency_ms"] = [args.latency_ms, args.latency_ms]
            sandbox.faults(**faults)
            sandbox.clear_requests()
            finance = User(email="bench@example.com", name="Bench", roles=frozenset({"finance"}))
            t0 = time.perf_counter()
            result = portal.bulk_links(ids, user=finance, session=session)
            seconds = time.perf_counter() - t0
        sent = [r for r in sandbox.requests() if r["path"] == "/v1/billing_portal/sessions"]
        times = sorted(r["time"] for r in sent)
        busiest = max((bisect.bisect_right(times, t + 1.0) - i for i, t in enumerate(times)), default=0)
        print(json.dumps({
            "bench": "portal_bulk", "invoices": args.invoices, "links": result.made, "failed": result.failed,
            "budget_rps": args.budget, "latency_ms": args.latency_ms, "seconds": round(seconds, 2),
            "requests": len(sent), "http_429": sum(r["status"] == 429 for r in sent),
            "max_requests_in_any_1s_window": busiest,
            "floor_seconds": round((args.invoices - 1) / args.budget, 2),
        }))
    finally:
        sandbox.stop()


if __name__ == "__main__":
    main()
