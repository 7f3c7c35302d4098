"""Ingest speed: recorded current-shape list pages → cache rows, into SQLite and PostgreSQL, on one core.

Pages are built in the exact JSON shape the sandbox (and Stripe, API 2026-10-28) returns for list calls
(`--record URL` records real pages from a running sandbox instead), then written with the sync's own
`PageWriter` (mapping + bulk newer-wins upsert + cursor, one transaction per 100-object page; on PostgreSQL
each page is sent whole and settled while the next one is mapped, as in a backfill).
Goal: ≥ 30,000 objects/s. Prints one JSON object on its last line.

    .venv/bin/python bench/ingest.py [--objects 40000] [--postgres postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import create_engine, text

from lib.db import get_engine, migrate
from lib.gateway import decode
from lib.sync import PageWriter

T0 = 1_760_000_000
RESOURCES = ("customers", "subscriptions", "invoices", "payment_methods")


def _customer(i: int) -> dict[str, Any]:
    return {
        "id": f"cus_{i:010d}",
        "object": "customer",
        "address": {
            "city": "Lyon",
            "country": "FR",
            "line1": f"{i} rue de la Paix",
            "line2": None,
            "postal_code": "69001",
            "state": None,
        },
        "balance": -(i % 7) * 100,
        "business_name": None,
        "cash_balance": None,
        "created": T0 + i,
        "currency": "eur",
        "customer_account": None,
        "default_source": None,
        "delinquent": i % 11 == 0,
        "description": None,
        "discount": None,
        "email": f"User.{i}+tag@Example.COM",
        "individual_name": None,
        "invoice_credit_balance": {},
        "invoice_prefix": f"P{i:06d}",
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": f"pm_{i:010d}",
            "footer": None,
            "rendering_options": None,
        },
        "livemode": False,
        "metadata": {"crm_id": str(i)},
        "name": f"Zoë Müller {i}",
        "next_invoice_sequence": 3,
        "phone": f"+33 4 72 {i % 100:02d} 00 00",
        "preferred_locales": ["fr"],
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": None,
    }


def _price(i: int) -> dict[str, Any]:
    return {
        "id": f"price_{i % 5}",
        "object": "price",
        "active": True,
        "billing_scheme": "per_unit",
        "created": T0,
        "currency": "eur",
        "custom_unit_amount": None,
        "livemode": False,
        "lookup_key": None,
        "metadata": {},
        "nickname": None,
        "product": f"prod_{i % 5}",
        "recurring": {
            "interval": "month" if i % 2 else "year",
            "interval_count": 1,
            "meter": None,
            "trial_period_days": None,
            "usage_type": "licensed",
        },
        "tax_behavior": "unspecified",
        "tiers_mode": None,
        "transform_quantity": None,
        "type": "recurring",
        "unit_amount": 1000 + (i % 5) * 500,
        "unit_amount_decimal": str(1000 + (i % 5) * 500),
    }


def _subscription(i: int) -> dict[str, Any]:
    items = [
        {
            "id": f"si_{i:010d}_{k}",
            "object": "subscription_item",
            "billing_thresholds": None,
            "created": T0 + i,
            "current_period_end": T0 + i + 30 * 86400,
            "current_period_start": T0 + i,
            "discounts": [],
            "metadata": {},
            "price": _price(i + k),
            "quantity": 1 + k,
            "subscription": f"sub_{i:010d}",
            "tax_rates": [],
        }
        for k in range(2)
    ]
    return {
        "id": f"sub_{i:010d}",
        "object": "subscription",
        "application": None,
        "application_fee_percent": None,
        "automatic_tax": {"enabled": False, "liability": None},
        "billing_cycle_anchor": T0 + i,
        "billing_cycle_anchor_config": None,
        "billing_mode": {"type": "flexible"},
        "billing_thresholds": None,
        "cancel_at": None,
        "cancel_at_period_end": i % 9 == 0,
        "canceled_at": None,
        "cancellation_details": {"comment": None, "feedback": None, "reason": None},
        "collection_method": "charge_automatically",
        "created": T0 + i,
        "currency": "eur",
        "customer": f"cus_{i:010d}",
        "days_until_due": None,
        "default_payment_method": f"pm_{i:010d}",
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [],
        "ended_at": None,
        "invoice_settings": {"account_tax_ids": None, "issuer": {"type": "self"}},
        "items": {
            "object": "list",
            "data": items,
            "has_more": False,
            "total_count": 2,
            "url": f"/v1/subscription_items?subscription=sub_{i:010d}",
        },
        "latest_invoice": f"in_{i:010d}",
        "livemode": False,
        "metadata": {},
        "next_pending_invoice_item_invoice": None,
        "on_behalf_of": None,
        "pause_collection": None,
        "payment_settings": None,
        "pending_invoice_item_interval": None,
        "pending_setup_intent": None,
        "pending_update": None,
        "schedule": None,
        "start_date": T0 + i,
        "status": ("active", "past_due", "trialing", "canceled")[i % 4],
        "test_clock": None,
        "transfer_data": None,
        "trial_end": None,
        "trial_settings": None,
        "trial_start": None,
    }


def _invoice(i: int) -> dict[str, Any]:
    lines = [
        {
            "id": f"il_{i:010d}_{k}",
            "object": "line_item",
            "amount": 1500,
            "currency": "eur",
            "description": f"1 × Plan {k} (at €15.00 / month)",
            "discount_amounts": [],
            "discountable": True,
            "discounts": [],
            "invoice": f"in_{i:010d}",
            "livemode": False,
            "metadata": {},
            "parent": {
                "type": "subscription_item_details",
                "invoice_item_details": None,
                "subscription_item_details": {
                    "invoice_item": None,
                    "proration": False,
                    "proration_details": {"credited_items": None},
                    "subscription": f"sub_{i:010d}",
                    "subscription_item": f"si_{i:010d}_{k}",
                },
            },
            "period": {"end": T0 + i + 30 * 86400, "start": T0 + i},
            "pretax_credit_amounts": [],
            "pricing": {
                "price_details": {"price": f"price_{k}", "product": f"prod_{k}"},
                "type": "price_details",
                "unit_amount_decimal": "1500",
            },
            "quantity": 1,
            "subtotal": 1500,
            "taxes": [],
        }
        for k in range(2)
    ]
    failed = i % 6 == 0
    return {
        "id": f"in_{i:010d}",
        "object": "invoice",
        "account_country": "FR",
        "account_name": "Bench",
        "amount_due": 3000,
        "amount_overpaid": 0,
        "amount_paid": 0 if failed else 3000,
        "amount_remaining": 3000 if failed else 0,
        "amount_shipping": 0,
        "attempt_count": 2 if failed else 1,
        "attempted": True,
        "auto_advance": failed,
        "billing_reason": "subscription_cycle",
        "collection_method": "charge_automatically",
        "created": T0 + i,
        "currency": "eur",
        "customer": f"cus_{i:010d}",
        "customer_email": f"user.{i}@example.com",
        "customer_name": f"User {i}",
        "default_payment_method": None,
        "description": None,
        "discounts": [],
        "due_date": None,
        "hosted_invoice_url": f"https://invoice.stripe.com/i/acct_1/test_{i}",
        "last_finalization_error": None,
        "lines": {
            "object": "list",
            "data": lines,
            "has_more": False,
            "total_count": 2,
            "url": f"/v1/invoices/in_{i:010d}/lines",
        },
        "livemode": False,
        "metadata": {},
        "next_payment_attempt": T0 + i + 3 * 86400 if failed else None,
        "number": f"P{i:06d}-0001",
        "parent": {
            "quote_details": None,
            "subscription_details": {"metadata": {}, "subscription": f"sub_{i:010d}"},
            "type": "subscription_details",
        },
        "payments": {"object": "list", "data": [], "has_more": False, "total_count": 0},
        "period_end": T0 + i,
        "period_start": T0 + i - 30 * 86400,
        "status": "open" if failed else "paid",
        "status_transitions": {
            "finalized_at": T0 + i,
            "marked_uncollectible_at": None,
            "paid_at": None if failed else T0 + i,
            "voided_at": None,
        },
        "subtotal": 3000,
        "total": 3000,
        "total_discount_amounts": [],
        "total_taxes": [],
        "webhooks_delivered_at": T0 + i,
    }


def _payment_method(i: int) -> dict[str, Any]:
    return {
        "id": f"pm_{i:010d}",
        "object": "payment_method",
        "allow_redisplay": "unspecified",
        "billing_details": {
            "address": {
                "city": None,
                "country": None,
                "line1": None,
                "line2": None,
                "postal_code": None,
                "state": None,
            },
            "email": None,
            "name": None,
            "phone": None,
            "tax_id": None,
        },
        "card": {
            "brand": "visa",
            "checks": {"address_line1_check": None, "address_postal_code_check": None, "cvc_check": "pass"},
            "country": "US",
            "display_brand": "visa",
            "exp_month": 1 + i % 12,
            "exp_year": 2030,
            "fingerprint": f"fp{i % 9973:08d}",
            "funding": "credit",
            "generated_from": None,
            "last4": f"{i % 10000:04d}",
            "networks": {"available": ["visa"], "preferred": None},
            "regulated_status": "unregulated",
            "three_d_secure_usage": {"supported": True},
            "wallet": None,
        },
        "created": T0 + i,
        "customer": f"cus_{i:010d}",
        "livemode": False,
        "metadata": {},
        "type": "card",
    }


BUILDERS = {
    "customers": _customer,
    "subscriptions": _subscription,
    "invoices": _invoice,
    "payment_methods": _payment_method,
}


def build_pages(objects: int) -> dict[str, list[bytes]]:
    """JSON bytes of 100-object list pages, as they come over the wire; parsed inside the timed loop."""
    per = objects // len(RESOURCES)
    pages: dict[str, list[bytes]] = {}
    for r, build in BUILDERS.items():
        pages[r] = [
            json.dumps(
                {
                    "object": "list",
                    "url": f"/v1/{r}",
                    "has_more": True,
                    "data": [build(i) for i in range(start, min(per, start + 100))],
                }
            ).encode()
            for start in range(0, per, 100)
        ]
    return pages


def record_pages(api_base: str, objects: int) -> dict[str, list[bytes]]:
    """Record real list pages from a running sandbox (it must hold enough objects)."""
    import urllib.request

    pages: dict[str, list[bytes]] = {r: [] for r in RESOURCES}
    for r in ("customers", "subscriptions", "invoices"):
        cursor, n = None, 0
        while n < objects // len(RESOURCES):
            q = (
                "limit=100"
                + ("&status=all" if r == "subscriptions" else "")
                + (f"&starting_after={cursor}" if cursor else "")
            )
            req = urllib.request.Request(f"{api_base}/v1/{r}?{q}", headers={"Authorization": "Bearer sk_test_bench"})
            body = urllib.request.urlopen(req).read()
            data = json.loads(body)["data"]
            if not data:
                break
            pages[r].append(body)
            n, cursor = n + len(data), data[-1]["id"]
    return pages


def _server_cpu(pid: int | None) -> float:
    """CPU seconds used so far by a PostgreSQL backend on this machine (0 when it cannot be read)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def run(url: str, pages: dict[str, list[bytes]]) -> dict[str, Any]:
    engine = get_engine(url)
    per: dict[str, float] = {}
    total_objects, total_seconds, cpu_seconds, server_seconds = 0, 0.0, 0.0, 0.0
    for resource, bodies in pages.items():
        if not bodies:
            continue
        n = 0
        with PageWriter(engine) as writer:  # the sync's page writer, as a backfill uses it
            backend = writer.backend_pid()  # PostgreSQL: the server process its pages are written by
            started, cpu_started, server_started = time.perf_counter(), time.process_time(), _server_cpu(backend)
            for body in bodies:
                page = decode(body)["data"]  # the sync's own parse of a list response
                writer.write(resource, page, T0 + 10**6, cursor=page[-1]["id"])
                n += len(page)
            writer.flush()  # the last page's commit is inside the timed span
            seconds = time.perf_counter() - started
            cpu_seconds += time.process_time() - cpu_started
            server_seconds += _server_cpu(backend) - server_started
        per[resource] = round(n / seconds)
        total_objects += n
        total_seconds += seconds
    engine.dispose()
    out = {
        "objects": total_objects,
        "seconds": round(total_seconds, 2),
        "objects_per_s": round(total_objects / total_seconds),
        "per_resource": per,
        "objects_per_cpu_s": round(total_objects / cpu_seconds),  # this process's CPU only
    }
    if server_seconds > 0:  # PostgreSQL's own work for the same pages (its backend process, another core)
        out["server_cpu_us_per_object"] = round(server_seconds / total_objects * 1e6, 1)
        out["client_cpu_us_per_object"] = round(cpu_seconds / total_objects * 1e6, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--objects", type=int, default=40_000)
    ap.add_argument(
        "--postgres", default=os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    )
    ap.add_argument("--record", help="record pages from this sandbox URL instead of building them")
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    pages = record_pages(args.record, args.objects) if args.record else build_pages(args.objects)
    gc.collect()
    gc.freeze()  # the bench's own setup objects are not the sync's garbage: keep them out of GC passes
    out: dict[str, Any] = {
        "bench": "ingest",
        "goal_objects_per_s": 30_000,
        "source": "recorded" if args.record else "built (current shape)",
        "load_average_1m": round(os.getloadavg()[0], 2),  # other work on this machine's cores
    }
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/ingest.db"
        migrate(url)
        out["sqlite"] = run(url, pages)
    if args.postgres:
        base = args.postgres.replace("postgresql://", "postgresql+psycopg://", 1)
        schema = f"bench_ingest_{uuid.uuid4().hex[:6]}"
        admin = create_engine(base, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        except Exception as exc:
            out["postgresql"] = {"error": f"PostgreSQL not reachable: {type(exc).__name__}"}
        else:
            sep = "&" if "?" in base else "?"
            url = f"{base}{sep}options=-csearch_path%3D{schema}"
            try:
                migrate(url)
                out["postgresql"] = run(url, pages)
            finally:
                get_engine(url).dispose()
                with admin.connect() as conn:
                    conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
    rates = [v["objects_per_s"] for k, v in out.items() if isinstance(v, dict) and "objects_per_s" in v]
    out["goal_met"] = bool(rates) and min(rates) >= 30_000
    print(json.dumps(out))


if __name__ == "__main__":
    main()
