"""Benchmark the dashboard pages over a large synthetic cache, on SQLite and PostgreSQL.

Fills a cache with 1,000,000 customers, 1,000,000 subscriptions (+ items), 3,000,000 invoices, 1,000,000
cards and 200,000 events, written straight to the database (executemany on SQLite, COPY on PostgreSQL,
indexes built after the load), then times every query the pages run (p50/p95 over repeated runs with
varied arguments) and a full AppTest run of each page (Streamlit's caches cleared before each run).

    .venv/bin/python bench/pages.py                      # both backends, full size
    .venv/bin/python bench/pages.py --backend sqlite --scale 0.01   # quick look

PostgreSQL: BENCH_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/test), in schema bench_pages.
The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("STRIPE_API_KEY", "sk_test_bench")

from sqlalchemy import create_engine, text  # noqa: E402
from sqlmodel import Session, SQLModel  # noqa: E402

from lib import queries as q  # noqa: E402
from lib.normalize import canonical_email, fold_name, normalize_email  # noqa: E402

NOW = datetime.now(UTC).replace(microsecond=0)
FIRST = ["Ana", "José", "Zoë", "Liam", "Noah", "Emma", "Olivia", "Jürgen", "Amélie", "Chloé", "Mateo", "Sofía",
         "Lucas", "Mia", "Hugo", "Léa", "Finn", "Ida", "Omar", "Aiko", "Wei", "Priya", "Kofi", "Sven"]
LAST = ["García", "Müller", "Smith", "Dubois", "Rossi", "Nowak", "Jensen", "Silva", "Kowalski", "O'Brien",
        "Tanaka", "Novák", "Öztürk", "Björk", "Martínez", "Lefèvre", "Schmidt", "Brown", "Wilson", "Ivanova"]
CURRENCIES = ["usd"] * 14 + ["eur"] * 4 + ["gbp", "jpy"]
SUB_STATUS = ["active"] * 70 + ["trialing"] * 5 + ["past_due"] * 3 + ["canceled"] * 19 + ["unpaid", "incomplete",
                                                                                          "paused"]
CODES = ["insufficient_funds"] * 5 + ["expired_card"] * 2 + ["card_declined"] * 2 + ["do_not_honor",
                                                                                      "authentication_required",
                                                                                      "lost_card", None]
TABLES = ["customers", "subscriptions", "subscription_items", "invoices", "payment_methods", "stripe_events",
          "sync_runs", "sync_state", "invoice_followups"]


# --- synthetic rows ---------------------------------------------------------------------------------------


def customer_rows(n: int, rnd: random.Random) -> Iterator[dict[str, Any]]:
    for i in range(n):
        first, last = rnd.choice(FIRST), rnd.choice(LAST)
        email = f"{fold_name(first)}.{i}@example{i % 50}.com"
        if i % 10 == 0:
            email = email.replace("@", "+billing@")
        cur = CURRENCIES[i % len(CURRENCIES)]
        yield {
            "id": f"cus_B{i:09d}", "email": email, "email_normalized": normalize_email(email),
            "email_canonical": canonical_email(email), "name": f"{first} {last}",
            "name_search": fold_name(f"{first} {last} {i}"), "phone": f"+1415{i:07d}" if i % 3 == 0 else None,
            "phone_normalized": f"+1415{i:07d}" if i % 3 == 0 else None,
            "created": NOW - timedelta(seconds=rnd.randint(0, 3 * 365 * 86400)), "currency": cur,
            "balance": -500 if i % 97 == 0 else 0, "delinquent": i % 33 == 0, "deleted": i % 100 == 0,
            "default_payment_method_id": f"pm_B{i:09d}", "address": "{}", "metadata": "{}",
            "mrr": 0, "livemode": False, "version_ts": 0, "synced_at": NOW,
        }


def subscription_rows(n: int, rnd: random.Random) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for i in range(n):
        status = SUB_STATUS[rnd.randrange(len(SUB_STATUS))]
        cur = CURRENCIES[i % len(CURRENCIES)]
        yearly = i % 5 == 0
        amount = rnd.choice([900, 1900, 4900, 9900]) * (100 if cur == "jpy" else 1)
        mrr = amount // 12 if yearly else amount
        start = NOW - timedelta(days=rnd.randint(0, 29))
        end = start + timedelta(days=365 if yearly else 30)
        trial_end = NOW + timedelta(days=rnd.randint(0, 14)) if status == "trialing" else None
        sub = {
            "id": f"sub_B{i:09d}", "customer_id": f"cus_B{i:09d}", "status": status,
            "created": NOW - timedelta(days=rnd.randint(30, 1000)), "current_period_start": start,
            "current_period_end": end, "cancel_at_period_end": i % 20 == 0, "cancel_at": None,
            "canceled_at": None, "trial_end": trial_end, "collection_method": "charge_automatically",
            "currency": cur, "mrr": mrr if status in ("active", "past_due", "trialing") else 0,
            "latest_invoice_id": f"in_B{3 * i:09d}", "default_payment_method_id": None, "schedule_id": None,
            "pause_collection": None, "discounts": "[]", "metadata": "{}", "livemode": False, "version_ts": 0,
            "synced_at": NOW,
        }
        product = i % 10
        item = {
            "id": f"si_B{i:09d}", "subscription_id": sub["id"],
            "price_id": f"price_{product}_{'y' if yearly else 'm'}_{cur}",
            "product_id": f"prod_{product}", "product_name": f"Plan {product}", "quantity": 1,
            "unit_amount": amount, "currency": cur, "interval": "year" if yearly else "month", "interval_count": 1,
            "current_period_start": start, "current_period_end": end, "metadata": "{}",
        }
        yield sub, item


def invoice_rows(n: int, customers: int, rnd: random.Random) -> Iterator[dict[str, Any]]:
    for i in range(n):
        c = i % customers
        cur = CURRENCIES[c % len(CURRENCIES)]
        amount = rnd.choice([900, 1900, 4900, 9900]) * (100 if cur == "jpy" else 1)
        created = NOW - timedelta(seconds=rnd.randint(0, 540 * 86400))
        roll = rnd.random()
        status, attempts, paid, code, retry, paid_at = "paid", 1, amount, None, None, created + timedelta(hours=1)
        if roll < 0.02:
            status, attempts, paid, paid_at = "open", rnd.randint(1, 4), 0, None
            code = rnd.choice(CODES)
            retry = NOW + timedelta(days=rnd.randint(1, 7)) if attempts < 4 else None
        elif roll < 0.025:
            status, attempts, paid, paid_at, code = "uncollectible", 4, 0, None, rnd.choice(CODES)
        elif roll < 0.055:
            attempts, code, paid_at = rnd.randint(2, 4), rnd.choice(CODES), created + timedelta(days=rnd.randint(1, 20))
        elif roll < 0.065:
            status, attempts, paid, paid_at = "void", 0, 0, None
        elif roll < 0.08:
            status, attempts, paid, paid_at = "draft", 0, 0, None
        yield {
            "id": f"in_B{i:09d}", "customer_id": f"cus_B{c:09d}", "subscription_id": f"sub_B{c:09d}",
            "number": f"B{i:09d}", "status": status, "currency": cur, "amount_due": amount, "amount_paid": paid,
            "amount_remaining": amount - paid, "total": amount, "attempt_count": attempts, "attempted": attempts > 0,
            "next_payment_attempt": retry, "created": created, "due_date": None, "paid_at": paid_at,
            "voided_at": None, "marked_uncollectible_at": created + timedelta(days=30) if status == "uncollectible"
            else None, "hosted_invoice_url": f"https://invoice.stripe.com/i/in_B{i:09d}", "customer_email": None,
            "collection_method": "charge_automatically", "billing_reason": "subscription_cycle",
            "failure_code": "card_declined" if code else None, "decline_code": code,
            "failure_message": "Your card was declined." if code else None, "livemode": False, "version_ts": 0,
            "synced_at": NOW,
        }


def pm_rows(n: int, rnd: random.Random) -> Iterator[dict[str, Any]]:
    for i in range(n):
        yield {"id": f"pm_B{i:09d}", "customer_id": f"cus_B{i:09d}", "type": "card",
               "card_brand": rnd.choice(["visa", "mastercard", "amex"]), "card_last4": f"{rnd.randint(0, 9999):04d}",
               "card_exp_month": rnd.randint(1, 12), "card_exp_year": NOW.year + rnd.randint(-1, 4),
               "card_fingerprint": f"fp{i:09d}", "created": NOW - timedelta(days=rnd.randint(0, 900)),
               "livemode": False, "version_ts": 0, "synced_at": NOW}


def event_rows(n: int, customers: int, rnd: random.Random) -> Iterator[dict[str, Any]]:
    for i in range(n):
        c = rnd.randrange(customers)
        obj = rnd.choice([f"cus_B{c:09d}", f"sub_B{c:09d}", f"in_B{c:09d}"])
        created = NOW - timedelta(seconds=rnd.randint(0, 30 * 86400))
        yield {"id": f"evt_B{i:09d}", "type": rnd.choice(["customer.updated", "invoice.paid",
                                                          "invoice.payment_failed", "customer.subscription.updated"]),
               "created": created, "object_id": obj, "source": "webhook" if i % 2 else "events",
               "processed_at": created + timedelta(seconds=2)}


# --- loading ------------------------------------------------------------------------------------------


def _columns(table: str) -> list[str]:
    return [c.name for c in SQLModel.metadata.tables[table].columns]


def _sqlite_value(v: Any) -> Any:
    if isinstance(v, datetime):
        return v.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return v


class Loader:
    """Bulk writer: executemany for SQLite, COPY for PostgreSQL; indexes dropped first, rebuilt after."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.kind = "sqlite" if url.startswith("sqlite") else "postgresql"

    def __enter__(self) -> Loader:
        if self.kind == "sqlite":
            self.conn = sqlite3.connect(self.url.removeprefix("sqlite:///"))
            self.conn.execute("PRAGMA synchronous=OFF")
        else:
            import psycopg

            raw = self.url.replace("postgresql+psycopg://", "postgresql://")
            self.conn = psycopg.connect(raw)
        self.drop_indexes()
        return self

    def drop_indexes(self) -> None:
        cur = self.conn.cursor()
        for table in TABLES:
            for idx in SQLModel.metadata.tables[table].indexes:
                cur.execute(f'DROP INDEX IF EXISTS "{idx.name}"')
        self.conn.commit()

    def write(self, table: str, rows: Iterator[dict[str, Any]], batch: int = 20_000) -> int:
        cols = _columns(table)
        n = 0
        if self.kind == "sqlite":
            sql = f'INSERT INTO {table} ({", ".join(cols)}) VALUES ({", ".join("?" * len(cols))})'  # noqa: S608 — names from the schema
            buf: list[tuple] = []
            for r in rows:
                buf.append(tuple(_sqlite_value(r.get(c)) for c in cols))
                if len(buf) >= batch:
                    self.conn.executemany(sql, buf)
                    n += len(buf)
                    buf.clear()
            self.conn.executemany(sql, buf)
            n += len(buf)
            self.conn.commit()
            return n
        with self.conn.cursor() as cur, cur.copy(f'COPY {table} ({", ".join(cols)}) FROM STDIN') as copy:
            for r in rows:
                copy.write_row([r.get(c) for c in cols])
                n += 1
        self.conn.commit()
        return n

    def finish(self) -> None:
        engine = create_engine(self.url)
        with engine.begin() as conn:
            for table in TABLES:
                for idx in SQLModel.metadata.tables[table].indexes:
                    idx.create(bind=conn, checkfirst=True)
        engine.dispose()
        cur = self.conn.cursor()
        if self.kind == "sqlite":
            cur.execute("PRAGMA analysis_limit=1000")
            cur.execute("ANALYZE")
        else:
            self.conn.autocommit = True
            cur.execute("VACUUM ANALYZE")
        self.conn.commit()

    def __exit__(self, *exc: object) -> None:
        self.conn.close()


def fill(url: str, sizes: dict[str, int]) -> dict[str, float]:
    from lib.db import get_engine, migrate

    migrate(url)
    get_engine(url).dispose()  # the loader writes through its own connection
    rnd = random.Random(7)
    t0 = time.perf_counter()
    subs_items: list[dict[str, Any]] = []
    with Loader(url) as load:
        for table in TABLES:
            if load.kind == "sqlite":
                load.conn.execute(f"DELETE FROM {table}")  # noqa: S608 — names from TABLES
            else:
                load.conn.execute(f"TRUNCATE {table}")
        load.write("customers", customer_rows(sizes["customers"], rnd))

        def subs() -> Iterator[dict[str, Any]]:
            for sub, item in subscription_rows(sizes["subscriptions"], rnd):
                subs_items.append(item)
                yield sub

        load.write("subscriptions", subs())
        load.write("subscription_items", iter(subs_items))
        subs_items.clear()
        load.write("invoices", invoice_rows(sizes["invoices"], sizes["customers"], rnd))
        load.write("payment_methods", pm_rows(sizes["customers"], rnd))
        load.write("stripe_events", event_rows(sizes["events"], sizes["customers"], rnd))
        load.write("sync_runs", ({"id": i + 1, "started_at": NOW - timedelta(minutes=10 * i + 1),
                                  "finished_at": NOW - timedelta(minutes=10 * i), "mode": "incremental",
                                  "status": "succeeded", "counts": json.dumps({"customers": 3}), "requests": 4,
                                  "error": None, "host": "bench"} for i in range(200)))
        load.write("sync_state", ({"resource": r, "event_cursor": "evt_B000000001", "event_cursor_created": NOW,
                                   "backfill_completed_at": NOW - timedelta(days=1), "updated_at": NOW}
                                  for r in ("customers", "subscriptions", "invoices", "payment_methods", "events")))
        load.write("invoice_followups", ({"invoice_id": f"in_B{i:09d}", "status": "contacted", "note": "called",
                                          "updated_by": "bench@example.com", "updated_at": NOW}
                                         for i in range(0, sizes["invoices"], max(1, sizes["invoices"] // 2000))))
        t_rows = time.perf_counter() - t0
        load.finish()
    return {"rows_seconds": round(t_rows, 1), "total_seconds": round(time.perf_counter() - t0, 1)}


# --- timing -------------------------------------------------------------------------------------------


def percentiles(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    p95 = s[min(len(s) - 1, int(round(0.95 * (len(s) - 1))))]
    return {"p50": round(statistics.median(s), 1), "p95": round(p95, 1), "n": len(s)}


def time_queries(url: str, sizes: dict[str, int], repeat: int) -> dict[str, dict[str, dict[str, float]]]:
    from lib.db import get_engine

    engine = get_engine(url)
    rnd = random.Random(11)
    n = sizes["customers"]

    def cid() -> str:
        return f"cus_B{rnd.randrange(n):09d}"

    def email() -> str:
        i = rnd.randrange(n)
        return f"{fold_name(FIRST[0])}.{i}@EXAMPLE{i % 50}.COM"  # wrong first name: exercises a miss too

    with Session(engine) as s:
        emails = [(s.get(q.Customer, cid()).email or "").upper() for _ in range(50)]

    def real_email() -> str:
        return rnd.choice(emails)

    cf, sf, ff = q.CustomerFilters, q.SubscriptionFilters, q.FailedFilters
    plan: dict[str, dict[str, Callable[[Session], Any]]] = {
        "customers": {
            "default_page": lambda s: q.search_customers(session=s, filters=cf()),
            "email_upper": lambda s: q.search_customers(session=s, filters=cf(q=real_email())),
            "email_plus_tag_stripped": lambda s: q.search_customers(
                session=s, filters=cf(q=f"ana.{rnd.randrange(0, n, 10)}@example0.com")),
            "email_miss": lambda s: q.search_customers(session=s, filters=cf(q=email())),
            "id": lambda s: q.search_customers(session=s, filters=cf(q=cid())),
            "phone": lambda s: q.search_customers(session=s, filters=cf(q=f"+1 415 {rnd.randrange(0, n, 3):07d}")),
            "card_last4": lambda s: q.search_customers(session=s, filters=cf(q=f"{rnd.randint(0, 9999):04d}")),
            "name_substring": lambda s: q.search_customers(session=s, filters=cf(q=rnd.choice(LAST))),
            "name_rare": lambda s: q.search_customers(session=s, filters=cf(q=f"garcia {rnd.randrange(n)}")),
            "delinquent": lambda s: q.search_customers(session=s, filters=cf(delinquent=True)),
            "unpaid": lambda s: q.search_customers(session=s, filters=cf(unpaid=True)),
            "sub_status_past_due": lambda s: q.search_customers(session=s, filters=cf(sub_status="past_due")),
            "currency_jpy_sort_mrr": lambda s: q.search_customers(session=s, filters=cf(currency="jpy", sort="mrr")),
            "created_range": lambda s: q.search_customers(session=s, filters=cf(
                created_from=(NOW - timedelta(days=40)).date(), created_to=(NOW - timedelta(days=30)).date())),
            "page_40": lambda s: q.search_customers(session=s, filters=cf(), page=40, page_size=25),
            "currencies": lambda s: q.customer_currencies(session=s),
        },
        "customer_detail": {
            "customer": lambda s: q.get_customer(session=s, customer_id=cid()),
            "payment_methods": lambda s: q.customer_payment_methods(session=s, customer_id=cid()),
            "subscriptions": lambda s: q.customer_subscriptions(session=s, customer_id=cid()),
            "invoices": lambda s: q.customer_invoices(session=s, customer_id=cid()),
            "open_amounts": lambda s: q.customer_open_amounts(session=s, customer_id=cid()),
            "timeline": lambda s: q.customer_timeline(session=s, customer_id=(c := cid()),
                                                      object_ids=(c.replace("cus_", "sub_"),)),
        },
        "subscriptions": {
            "default_page": lambda s: q.list_subscriptions(session=s, filters=sf()),
            "status_past_due": lambda s: q.list_subscriptions(session=s, filters=sf(statuses=("past_due",))),
            "product": lambda s: q.list_subscriptions(session=s, filters=sf(product_id=f"prod_{rnd.randrange(10)}")),
            "trial_ending_7d": lambda s: q.list_subscriptions(session=s, filters=sf(trial_ending_days=7)),
            "cancel_at_period_end_eur": lambda s: q.list_subscriptions(
                session=s, filters=sf(cancel_at_period_end=True, currency="eur")),
            "totals_all": lambda s: q.subscription_totals(session=s, filters=sf()),
            "totals_past_due": lambda s: q.subscription_totals(session=s, filters=sf(statuses=("past_due",))),
            "choices": lambda s: q.subscription_choices(session=s),
        },
        "failed_invoices": {
            "worklist": lambda s: q.failed_invoices(session=s, filters=ff()),
            "worklist_decline_code": lambda s: q.failed_invoices(session=s, filters=ff(decline_code="expired_card")),
            "worklist_followup_contacted": lambda s: q.failed_invoices(session=s, filters=ff(followup="contacted")),
            "at_risk": lambda s: q.at_risk_by_currency(session=s),
            "by_decline_code": lambda s: q.failed_by_decline_code(session=s),
            "by_age": lambda s: q.failed_by_age(session=s),
            "recovery_usd": lambda s: q.recovery(session=s, currency="usd"),
            "decline_codes": lambda s: q.decline_codes(session=s),
            "currencies": lambda s: q.failed_currencies(session=s),
        },
        "sync": {
            "runs": lambda s: q.recent_sync_runs(session=s),
            "cursors": lambda s: q.sync_states(session=s),
            "webhooks": lambda s: q.webhook_stats(session=s),
            "freshness": lambda s: q.cache_freshness(session=s),
        },
        "overview": {
            "estimates": lambda s: q.table_estimates(session=s),
            "mrr_by_currency": lambda s: q.mrr_by_currency(session=s),
        },
    }
    out: dict[str, dict[str, dict[str, float]]] = {}
    with Session(engine) as session:
        for page, fns in plan.items():
            out[page] = {}
            for name, fn in fns.items():
                fn(session)  # warm the page cache once, like a running dashboard
                samples = []
                for _ in range(repeat):
                    t = time.perf_counter()
                    fn(session)
                    samples.append((time.perf_counter() - t) * 1000)
                out[page][name] = percentiles(samples)
    return out


def time_pages(url: str, sizes: dict[str, int], repeat: int) -> dict[str, dict[str, float]]:
    import streamlit as st

    from lib.config import get_settings
    from tests.utils.apptest import run_page

    os.environ["DATABASE_URL"] = url
    get_settings.cache_clear()
    rnd = random.Random(5)
    n = sizes["customers"]
    runs: dict[str, Callable[[], Any]] = {
        "overview": lambda: run_page("overview.py", timeout=60),
        "customers": lambda: run_page("customers.py", timeout=60),
        "customers_search": lambda: run_page("customers.py", timeout=60,
                                             cust_search=f"ANA.{rnd.randrange(0, n, 10)}@EXAMPLE0.COM"),
        "customer_detail": lambda: run_page("customer_detail.py", timeout=60,
                                            query={"id": f"cus_B{rnd.randrange(n):09d}"}),
        "subscriptions": lambda: run_page("subscriptions.py", timeout=60),
        "failed_invoices": lambda: run_page("failed_invoices.py", timeout=60),
        "sync": lambda: run_page("sync.py", timeout=60),
    }
    out = {}
    for name, fn in runs.items():
        samples = []
        for i in range(repeat + 1):
            st.cache_data.clear()
            t = time.perf_counter()
            at = fn()
            took = (time.perf_counter() - t) * 1000
            if at.exception:
                raise RuntimeError(f"page {name} failed: {at.exception[0].message}")
            if i:  # the first run imports modules: not what a user waits for
                samples.append(took)
        out[name] = percentiles(samples)
    return out


def _pg_base() -> str:
    base = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    return base.replace("postgresql://", "postgresql+psycopg://", 1)


def drop_schema(schema: str, create: bool = False) -> None:
    engine = create_engine(_pg_base(), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        if create:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()


def pg_url(schema: str) -> str:
    """A fresh, empty schema for the bench and the URL that points at it."""
    drop_schema(schema, create=True)
    return pg_url_existing(schema)


def pg_url_existing(schema: str) -> str:
    base = _pg_base()
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    ap.add_argument("--scale", type=float, default=1.0, help="1.0 = 1M customers / 1M subs / 3M invoices")
    ap.add_argument("--repeat", type=int, default=20, help="timed runs per query")
    ap.add_argument("--page-repeat", type=int, default=5, help="timed AppTest runs per page")
    ap.add_argument("--keep", action="store_true", help="keep the SQLite file / PostgreSQL schema")
    ap.add_argument("--workdir", help="where the SQLite file goes (default: a temporary folder)")
    ap.add_argument("--no-fill", action="store_true", help="reuse a cache kept by an earlier --keep run")
    args = ap.parse_args()
    sizes = {"customers": int(1_000_000 * args.scale), "subscriptions": int(1_000_000 * args.scale),
             "invoices": int(3_000_000 * args.scale), "events": int(200_000 * args.scale)}
    result: dict[str, Any] = {"sizes": sizes, "goal": {"query_p95_ms": 50, "page_run_ms": 1500}, "backends": {}}
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    tmp = args.workdir or tempfile.mkdtemp(prefix="bench_pages_")
    Path(tmp).mkdir(parents=True, exist_ok=True)
    for backend in backends:
        if backend == "sqlite":
            url = f"sqlite:///{tmp}/cache.db"
        else:
            url = pg_url_existing("bench_pages") if args.no_fill else pg_url("bench_pages")
        print(f"[{backend}] filling {sizes} …", file=sys.stderr, flush=True)
        load = {"reused": True} if args.no_fill else fill(url, sizes)
        print(f"[{backend}] filled: {load}; timing queries …", file=sys.stderr, flush=True)
        queries_ms = time_queries(url, sizes, args.repeat)
        print(f"[{backend}] timing pages …", file=sys.stderr, flush=True)
        pages_ms = time_pages(url, sizes, args.page_repeat)
        worst_q = max((v["p95"], f"{p}.{k}") for p, d in queries_ms.items() for k, v in d.items())
        worst_p = max((v["p95"], k) for k, v in pages_ms.items())
        result["backends"][backend] = {
            "fill": load, "queries_ms": queries_ms, "pages_ms": pages_ms,
            "worst_query_p95": {"ms": worst_q[0], "query": worst_q[1]},
            "worst_page_p95": {"ms": worst_p[0], "page": worst_p[1]},
            "queries_over_goal": sorted(f"{p}.{k}" for p, d in queries_ms.items() for k, v in d.items()
                                        if v["p95"] > 50),
            "pages_over_goal": sorted(k for k, v in pages_ms.items() if v["p95"] > 1500),
        }
        if not args.keep and backend == "postgresql":
            from lib.db import get_engine

            get_engine(url).dispose()
            drop_schema("bench_pages")
    if not args.keep:
        for f in Path(tmp).glob("cache.db*"):
            f.unlink()
        if not args.workdir:
            os.rmdir(tmp)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
