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
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("STRIPE_API_KEY", "sk_test_bench")

import numpy as np  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlmodel import Session, SQLModel  # noqa: E402

from lib import queries as q  # noqa: E402
from lib.models import NAME_TRGM_INDEX, ensure_optional_indexes  # noqa: E402
from lib.normalize import fold_name  # noqa: E402
from lib.triggers import drop_derived_state, ensure_derived_state  # noqa: E402

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
DERIVED = ["subscription_totals", "invoice_recovery_daily"]  # trigger-kept tables, rebuilt after the load
TABLES = ["customers", "subscriptions", "subscription_items", "invoices", "payment_methods", "stripe_events",
          "sync_runs", "sync_state", "invoice_followups"]


# --- synthetic rows, generated a column at a time (numpy) so 7 million rows take about a minute -------------

CHUNK = 200_000


class Gen:
    """Column generator for one backend: timestamps as text in the form the database stores/accepts."""

    def __init__(self, kind: str, seed: int = 7) -> None:
        self.kind = kind
        self.rng = np.random.default_rng(seed)
        self.now = int(NOW.timestamp())

    def ts(self, epochs: np.ndarray, mask: np.ndarray | None = None) -> list[str | None]:
        """Epoch seconds → '2026-01-02 03:04:05.000000' (SQLite) / '2026-01-02 03:04:05+00' (PostgreSQL)."""
        text = np.char.replace(epochs.astype("datetime64[s]").astype(str), "T", " ")
        text = np.char.add(text, ".000000" if self.kind == "sqlite" else "+00")
        out = text.tolist()
        if mask is not None:
            out = [v if m else None for v, m in zip(out, mask.tolist(), strict=True)]
        return out

    def ago(self, n: int, max_seconds: int, min_seconds: int = 0) -> np.ndarray:
        return self.now - self.rng.integers(min_seconds, max_seconds, n)

    def pick(self, options: list[Any], n: int) -> list[Any]:
        return [options[i] for i in self.rng.integers(0, len(options), n).tolist()]

    def bools(self, values: np.ndarray) -> list[Any]:
        return [bool(v) for v in values.tolist()] if self.kind == "postgresql" else values.astype(int).tolist()


def customer_cols(g: Gen, a: int, b: int) -> dict[str, list[Any]]:
    idx = np.arange(a, b)
    n = b - a
    names = [(f, la) for f in FIRST for la in LAST]
    pick = g.rng.integers(0, len(names), n).tolist()
    first_fold = [fold_name(names[p][0]) for p in range(len(names))]
    full = [f"{f} {la}" for f, la in names]
    full_fold = [fold_name(x) for x in full]
    # 50 big domains (~15,000 customers each) and ~10,000 small companies (~25 each, every 4th customer)
    domain = [f"co{i % 9973}.com" if i % 4 == 1 else f"example{i % 50}.com" for i in idx.tolist()]
    email = [f"{first_fold[p]}.{i}{'+billing' if i % 10 == 0 else ''}@{d}"
             for p, i, d in zip(pick, idx.tolist(), domain, strict=True)]
    canon = [e.replace("+billing", "") for e in email]
    phone = [f"+1415{i:07d}" if i % 3 == 0 else None for i in idx.tolist()]
    return {
        "id": [f"cus_B{i:09d}" for i in idx.tolist()], "email": email, "email_normalized": email,
        "email_canonical": canon, "email_domain": domain,
        "name": [full[p] for p in pick], "name_search": [full_fold[p] for p in pick],
        "phone": phone, "phone_normalized": phone, "created": g.ts(g.ago(n, 3 * 365 * 86400)),
        "currency": [CURRENCIES[i % len(CURRENCIES)] for i in idx.tolist()],
        "balance": np.where(idx % 97 == 0, -500, 0).tolist(), "delinquent": g.bools(idx % 33 == 0),
        "deleted": g.bools(idx % 100 == 0), "default_payment_method_id": [f"pm_B{i:09d}" for i in idx.tolist()],
        "address": ["{}"] * n, "metadata": ["{}"] * n, "mrr": g.rng.choice([0, 900, 1900, 4900], n).tolist(),
        "livemode": g.bools(np.zeros(n, bool)), "version_ts": [0] * n, "synced_at": g.ts(np.full(n, g.now)),
    }


def subscription_cols(g: Gen, a: int, b: int) -> tuple[dict[str, list[Any]], dict[str, list[Any]]]:
    idx = np.arange(a, b)
    n = b - a
    status = g.pick(SUB_STATUS, n)
    cur = [CURRENCIES[i % len(CURRENCIES)] for i in idx.tolist()]
    yearly = idx % 5 == 0
    amount = g.rng.choice([900, 1900, 4900, 9900], n) * np.where(np.array(cur) == "jpy", 100, 1)
    mrr = np.where(yearly, amount // 12, amount)
    live = np.isin(np.array(status), ["active", "past_due", "trialing"])
    start = g.ago(n, 29 * 86400)
    end = start + np.where(yearly, 365, 30) * 86400
    trialing = np.array(status) == "trialing"
    ids = [f"sub_B{i:09d}" for i in idx.tolist()]
    product = (idx % 10).tolist()
    yl = yearly.tolist()
    subs = {
        "id": ids, "customer_id": [f"cus_B{i:09d}" for i in idx.tolist()], "status": status,
        "created": g.ts(g.ago(n, 1000 * 86400, 30 * 86400)), "current_period_start": g.ts(start),
        "current_period_end": g.ts(end), "cancel_at_period_end": g.bools(idx % 20 == 0),
        "trial_end": g.ts(g.now + g.rng.integers(0, 14 * 86400, n), trialing),
        "collection_method": ["charge_automatically"] * n, "currency": cur,
        "mrr": np.where(live, mrr, 0).tolist(), "latest_invoice_id": [f"in_B{3 * i:09d}" for i in idx.tolist()],
        "discounts": ["[]"] * n, "metadata": ["{}"] * n, "livemode": g.bools(np.zeros(n, bool)),
        "version_ts": [0] * n, "synced_at": g.ts(np.full(n, g.now)),
    }
    items = {
        "id": [f"si_B{i:09d}" for i in idx.tolist()], "subscription_id": ids,
        "price_id": [f"price_{p}_{'y' if y else 'm'}_{c}" for p, y, c in zip(product, yl, cur, strict=True)],
        "product_id": [f"prod_{p}" for p in product], "product_name": [f"Plan {p}" for p in product],
        "quantity": [1] * n, "unit_amount": amount.tolist(), "currency": cur,
        "interval": ["year" if y else "month" for y in yl], "interval_count": [1] * n,
        "current_period_start": subs["current_period_start"], "current_period_end": subs["current_period_end"],
        "metadata": ["{}"] * n,
    }
    return subs, items


def invoice_cols(g: Gen, a: int, b: int, customers: int) -> dict[str, list[Any]]:
    idx = np.arange(a, b)
    n = b - a
    c = idx % customers
    cur = np.array(CURRENCIES)[c % len(CURRENCIES)]
    amount = g.rng.choice([900, 1900, 4900, 9900], n) * np.where(cur == "jpy", 100, 1)
    created = g.ago(n, 540 * 86400)
    roll = g.rng.random(n)
    status = np.select([roll < 0.02, roll < 0.025, roll < 0.055, roll < 0.065, roll < 0.08],
                       ["open", "uncollectible", "paid", "void", "draft"], "paid")
    recovered = (roll >= 0.025) & (roll < 0.055)
    failed = roll < 0.025
    attempts = np.select([roll < 0.02, roll < 0.025, recovered, roll < 0.08], [g.rng.integers(1, 5, n), 4,
                         g.rng.integers(2, 5, n), 0], 1)
    paid = np.where(status == "paid", amount, 0)
    paid_at = created + np.where(recovered, g.rng.integers(1, 20, n) * 86400, 3600)
    has_code = failed | recovered
    code_pick = g.pick(CODES, n)
    code = [cd if h else None for cd, h in zip(code_pick, has_code.tolist(), strict=True)]
    retry_mask = (status == "open") & (attempts < 4)
    cids = [f"cus_B{i:09d}" for i in c.tolist()]
    return {
        "id": [f"in_B{i:09d}" for i in idx.tolist()], "customer_id": cids,
        "subscription_id": [x.replace("cus_", "sub_") for x in cids], "number": [f"B{i:09d}" for i in idx.tolist()],
        "status": status.tolist(), "currency": cur.tolist(), "amount_due": amount.tolist(),
        "amount_paid": paid.tolist(), "amount_remaining": (amount - paid).tolist(), "total": amount.tolist(),
        "attempt_count": attempts.tolist(), "attempted": g.bools(attempts > 0),
        "next_payment_attempt": g.ts(g.now + g.rng.integers(1, 8, n) * 86400, retry_mask),
        "created": g.ts(created), "paid_at": g.ts(paid_at, status == "paid"),
        "marked_uncollectible_at": g.ts(created + 30 * 86400, status == "uncollectible"),
        "hosted_invoice_url": [f"https://invoice.stripe.com/i/in_B{i:09d}" for i in idx.tolist()],
        "collection_method": ["charge_automatically"] * n, "billing_reason": ["subscription_cycle"] * n,
        "failure_code": ["card_declined" if x else None for x in code], "decline_code": code,
        "failure_message": ["Your card was declined." if x else None for x in code],
        "livemode": g.bools(np.zeros(n, bool)), "version_ts": [0] * n, "synced_at": g.ts(np.full(n, g.now)),
    }


def pm_cols(g: Gen, a: int, b: int) -> dict[str, list[Any]]:
    idx = np.arange(a, b).tolist()
    n = b - a
    return {
        "id": [f"pm_B{i:09d}" for i in idx], "customer_id": [f"cus_B{i:09d}" for i in idx], "type": ["card"] * n,
        "card_brand": g.pick(["visa", "mastercard", "amex"], n),
        "card_last4": [f"{x:04d}" for x in g.rng.integers(0, 10000, n).tolist()],
        "card_exp_month": g.rng.integers(1, 13, n).tolist(),
        "card_exp_year": (NOW.year + g.rng.integers(-1, 5, n)).tolist(),
        "card_fingerprint": [f"fp{i:09d}" for i in idx], "created": g.ts(g.ago(n, 900 * 86400)),
        "livemode": g.bools(np.zeros(n, bool)), "version_ts": [0] * n, "synced_at": g.ts(np.full(n, g.now)),
    }


def event_cols(g: Gen, a: int, b: int, customers: int) -> dict[str, list[Any]]:
    idx = np.arange(a, b).tolist()
    n = b - a
    c = g.rng.integers(0, customers, n).tolist()
    prefix = g.pick(["cus", "sub", "in"], n)
    created = g.ago(n, 30 * 86400)
    return {
        "id": [f"evt_B{i:09d}" for i in idx], "object_id": [f"{p}_B{x:09d}" for p, x in zip(prefix, c, strict=True)],
        "type": g.pick(["customer.updated", "invoice.paid", "invoice.payment_failed",
                        "customer.subscription.updated"], n),
        "created": g.ts(created), "source": ["webhook" if i % 2 else "events" for i in idx],
        "processed_at": g.ts(created + 2),
    }


def small_rows(g: Gen, invoices: int) -> dict[str, dict[str, list[Any]]]:
    runs = list(range(200))
    states = ["customers", "subscriptions", "invoices", "payment_methods", "events"]
    fu = list(range(0, invoices, max(1, invoices // 2000)))
    return {
        "sync_runs": {"id": [i + 1 for i in runs], "started_at": g.ts(np.array([g.now - 600 * i - 60 for i in runs])),
                      "finished_at": g.ts(np.array([g.now - 600 * i for i in runs])),
                      "mode": ["incremental"] * 200, "status": ["succeeded"] * 200,
                      "counts": ['{"customers": 3}'] * 200, "requests": [4] * 200, "host": ["bench"] * 200},
        "sync_state": {"resource": states, "event_cursor": ["evt_B000000001"] * 5,
                       "event_cursor_created": g.ts(np.full(5, g.now)),
                       "backfill_completed_at": g.ts(np.full(5, g.now - 86400)), "updated_at": g.ts(np.full(5, g.now))},
        "invoice_followups": {"invoice_id": [f"in_B{i:09d}" for i in fu], "status": ["contacted"] * len(fu),
                              "note": ["called"] * len(fu), "updated_by": ["bench@example.com"] * len(fu),
                              "updated_at": g.ts(np.full(len(fu), g.now))},
    }


# --- loading ------------------------------------------------------------------------------------------


def _columns(table: str) -> list[str]:
    return [c.name for c in SQLModel.metadata.tables[table].columns]


def _pg_text(v: Any) -> str:
    if v is None:
        return "\\N"
    if isinstance(v, str):
        return v.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
    return str(v)


class Loader:
    """Bulk writer: executemany for SQLite, COPY for PostgreSQL; indexes dropped first, rebuilt after."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.kind = "sqlite" if url.startswith("sqlite") else "postgresql"

    def __enter__(self) -> Loader:
        if self.kind == "sqlite":
            self.conn = sqlite3.connect(self.url.removeprefix("sqlite:///"))
            self.conn.execute("PRAGMA synchronous=OFF")
            self.conn.execute("PRAGMA cache_size=-1000000")
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
        cur.execute(f'DROP INDEX IF EXISTS "{NAME_TRGM_INDEX}"')  # rebuilt after the load, like the rest
        self.conn.commit()

    def write(self, table: str, cols: dict[str, list[Any]]) -> int:
        """Write one chunk given as columns (names from the schema; absent columns are NULL)."""
        names = [c for c in _columns(table) if c in cols]
        rows = list(zip(*(cols[c] for c in names), strict=True))
        if self.kind == "sqlite":
            marks = ", ".join("?" * len(names))
            self.conn.executemany(f'INSERT INTO {table} ({", ".join(names)}) VALUES ({marks})', rows)  # noqa: S608
            self.conn.commit()
            return len(rows)
        with self.conn.cursor() as cur, cur.copy(f'COPY {table} ({", ".join(names)}) FROM STDIN') as copy:
            copy.write("".join("\t".join(map(_pg_text, r)) + "\n" for r in rows))
        self.conn.commit()
        return len(rows)

    def finish(self) -> None:
        """Build every index in one pass per index (big sort memory), then refresh planner statistics."""
        from sqlalchemy.schema import CreateIndex

        cur = self.conn.cursor()
        if self.kind == "sqlite":
            from sqlalchemy.dialects import sqlite as dialect

            cur.execute("PRAGMA cache_size=-2000000")  # 2 GB page cache while sorting index entries
            cur.execute("PRAGMA temp_store=MEMORY")
        else:
            from sqlalchemy.dialects import postgresql as dialect

            cur.execute("SET maintenance_work_mem = '1GB'")
        for table in TABLES:
            for idx in SQLModel.metadata.tables[table].indexes:
                cur.execute(str(CreateIndex(idx).compile(dialect=dialect.dialect())))
                self.conn.commit()
        if self.kind == "sqlite":
            cur.execute("PRAGMA analysis_limit=1000")
            cur.execute("ANALYZE")
            self.conn.commit()
        else:
            self.conn.autocommit = True
            cur.execute("VACUUM ANALYZE")

    def __exit__(self, *exc: object) -> None:
        self.conn.close()


def fill(url: str, sizes: dict[str, int]) -> dict[str, float]:
    from lib.db import get_engine, migrate

    migrate(url)
    with get_engine(url).begin() as conn:  # bulk load without the totals triggers; rebuilt after
        drop_derived_state(conn)
    get_engine(url).dispose()  # the loader writes through its own connection
    t0 = time.perf_counter()
    with Loader(url) as load:
        g = Gen(load.kind)
        for table in TABLES:
            load.conn.execute(f"DELETE FROM {table}")  # noqa: S608 — names from TABLES
        load.conn.commit()
        for a in range(0, sizes["customers"], CHUNK):
            load.write("customers", customer_cols(g, a, min(a + CHUNK, sizes["customers"])))
            load.write("payment_methods", pm_cols(g, a, min(a + CHUNK, sizes["customers"])))
        for a in range(0, sizes["subscriptions"], CHUNK):
            subs, items = subscription_cols(g, a, min(a + CHUNK, sizes["subscriptions"]))
            load.write("subscriptions", subs)
            load.write("subscription_items", items)
        for a in range(0, sizes["invoices"], CHUNK):
            load.write("invoices", invoice_cols(g, a, min(a + CHUNK, sizes["invoices"]), sizes["customers"]))
        for a in range(0, sizes["events"], CHUNK):
            load.write("stripe_events", event_cols(g, a, min(a + CHUNK, sizes["events"]), sizes["customers"]))
        for table, cols in small_rows(g, sizes["invoices"]).items():
            load.write(table, cols)
        t_rows = time.perf_counter() - t0
        load.finish()
    t_derived = time.perf_counter()
    with get_engine(url).begin() as conn:
        # triggers back; subscription_totals and invoice_recovery_daily rebuilt from the rows, then given
        # planner statistics (the ANALYZE above ran before they were filled)
        ensure_derived_state(conn)
        for table in DERIVED:
            conn.execute(text(f"ANALYZE {table}"))
    t_derived = time.perf_counter() - t_derived
    optional_indexes(url)
    return {"rows_seconds": round(t_rows, 1), "derived_seconds": round(t_derived, 1),
            "total_seconds": round(time.perf_counter() - t0, 1)}


def optional_indexes(url: str) -> bool:
    """The PostgreSQL trigram name index, as `lib.db.migrate` creates it when the server allows."""
    from lib.db import get_engine

    engine = get_engine(url)
    with engine.begin() as conn:
        return ensure_optional_indexes(conn)


def catch_up_indexes(url: str) -> dict[str, Any]:
    """For --no-fill: build the indexes lib/models.py declares that a kept cache lacks, then ANALYZE.

    Lets a changed index be measured without refilling (a full fill builds every index anyway).
    """
    from sqlalchemy import inspect

    from lib.db import get_engine

    engine = get_engine(url)
    built = []
    SQLModel.metadata.create_all(engine)  # tables added since the cache was filled
    with engine.begin() as conn:
        rebuilt = ensure_derived_state(conn)
        have = {t: {i["name"] for i in inspect(conn).get_indexes(t)} for t in TABLES}
        for table in TABLES:
            for idx in SQLModel.metadata.tables[table].indexes:
                if idx.name not in have[table]:
                    idx.create(conn)
                    built.append(idx.name)
        if built:
            if conn.dialect.name == "sqlite":
                conn.execute(text("PRAGMA analysis_limit=1000"))
            conn.execute(text("ANALYZE"))
    return {"reused": True, "indexes_built": built, "totals_rebuilt": rebuilt,
            "trigram_index": optional_indexes(url)}


# --- timing -------------------------------------------------------------------------------------------


def percentiles(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    p95 = s[min(len(s) - 1, int(round(0.95 * (len(s) - 1))))]
    return {"p50": round(statistics.median(s), 1), "p95": round(p95, 1), "n": len(s)}


def time_queries(url: str, sizes: dict[str, int], repeat: int,
                 only: set[str] | None = None) -> dict[str, dict[str, dict[str, float]]]:
    from lib.db import get_engine

    engine = get_engine(url)
    rnd = random.Random(11)
    n = sizes["customers"]

    def cid() -> str:
        return f"cus_B{rnd.randrange(n):09d}"

    def email() -> str:
        i = rnd.randrange(n)
        return f"nobody.{i}@EXAMPLE{i % 50}.COM"  # no such address: the index answers "none" too

    with Session(engine) as s:
        emails = [(s.get(q.Customer, cid()).email or "").upper() for _ in range(50)]
        tagged = [(s.get(q.Customer, f"cus_B{rnd.randrange(0, n, 10):09d}").email or "").replace("+billing", "")
                  for _ in range(50)]

    def real_email() -> str:
        return rnd.choice(emails)

    cf, sf, ff = q.CustomerFilters, q.SubscriptionFilters, q.FailedFilters
    plan: dict[str, dict[str, Callable[[Session], Any]]] = {
        "customers": {
            "default_page": lambda s: q.search_customers(session=s, filters=cf()),
            "email_upper": lambda s: q.search_customers(session=s, filters=cf(q=real_email())),
            "email_plus_tag_stripped": lambda s: q.search_customers(session=s, filters=cf(q=rnd.choice(tagged))),
            "email_miss": lambda s: q.search_customers(session=s, filters=cf(q=email())),
            "id": lambda s: q.search_customers(session=s, filters=cf(q=cid())),
            "phone": lambda s: q.search_customers(session=s, filters=cf(q=f"+1 415 {rnd.randrange(0, n, 3):07d}")),
            "card_last4": lambda s: q.search_customers(session=s, filters=cf(q=f"{rnd.randint(0, 9999):04d}")),
            "domain_company": lambda s: q.search_customers(session=s, filters=cf(q=f"@CO{rnd.randrange(9973)}.com")),
            "domain_big": lambda s: q.search_customers(session=s, filters=cf(q=f"example{rnd.randrange(50)}.com")),
            "domain_miss": lambda s: q.search_customers(session=s, filters=cf(q=f"@nobody{rnd.randrange(n)}.com")),
            "name_substring": lambda s: q.search_customers(session=s, filters=cf(q=rnd.choice(LAST))),
            "name_absent": lambda s: q.search_customers(session=s, filters=cf(q=f"zebedee{rnd.randrange(n)}")),
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
            "estimates": lambda s: q.table_counts(session=s),
            "mrr_by_currency": lambda s: q.mrr_by_currency(session=s),
        },
    }
    out: dict[str, dict[str, dict[str, float]]] = {}
    with Session(engine) as session:
        for page, fns in plan.items():
            out[page] = {}
            for name, fn in fns.items():
                if only and page not in only and f"{page}.{name}" not in only:
                    continue
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

    from bench.apptest import run_page
    from lib.config import get_settings

    os.environ["DATABASE_URL"] = url
    get_settings.cache_clear()
    rnd = random.Random(5)
    n = sizes["customers"]
    runs: dict[str, Callable[[], Any]] = {
        "overview": lambda: run_page("overview.py", timeout=60),
        "customers": lambda: run_page("customers.py", timeout=60),
        "customers_search": lambda: run_page("customers.py", timeout=60,
                                             cust_search=f"cus_B{rnd.randrange(n):09d}"),
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
    ap.add_argument("--no-fill", action="store_true",
                    help="reuse a cache kept by an earlier --keep run (indexes it lacks are built first)")
    ap.add_argument("--schema", default="bench_pages", help="the PostgreSQL schema (one per person on a shared host)")
    ap.add_argument("--only", help="time only these queries, e.g. customers.name_absent,overview (no pages)")
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
            url = pg_url_existing(args.schema) if args.no_fill else pg_url(args.schema)
        print(f"[{backend}] filling {sizes} …", file=sys.stderr, flush=True)
        load = catch_up_indexes(url) if args.no_fill else fill(url, sizes)
        print(f"[{backend}] filled: {load}; timing queries …", file=sys.stderr, flush=True)
        only = set(args.only.split(",")) if args.only else None
        queries_ms = time_queries(url, sizes, args.repeat, only)
        print(f"[{backend}] timing pages …", file=sys.stderr, flush=True)
        pages_ms = {} if only else time_pages(url, sizes, args.page_repeat)
        worst_q = max(((v["p95"], f"{p}.{k}") for p, d in queries_ms.items() for k, v in d.items()),
                      default=(0, ""))
        worst_p = max(((v["p95"], k) for k, v in pages_ms.items()), default=(0, ""))
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
            drop_schema(args.schema)
    if not args.keep:
        for f in Path(tmp).glob("cache.db*"):
            f.unlink()
        if not args.workdir:
            os.rmdir(tmp)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
