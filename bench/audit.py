"""Benchmark the Audit log page's queries on a large trail: each filter's first page (with its bounded
count), a deep page, and the CSV export of a filtered range.

    .venv/bin/python bench/audit.py [--rows 500000] [--backend sqlite|postgresql] [--pg-url URL]

Rows are written straight into a fresh database (SQLite file, or a fresh PostgreSQL schema), with 200
actors, 6 actions, 4 results and 50,000 customers over 365 days. Each query runs 5 times; the median is
reported. The last line of output is ONE JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, insert, text  # noqa: E402
from sqlmodel import Session  # noqa: E402

from lib import audit  # noqa: E402
from lib.db import get_engine, migrate  # noqa: E402
from lib.models import AuditLog, utcnow  # noqa: E402

ACTIONS = ["portal_link", "bulk_portal_links", "merge_step", "followup", "refresh", "export_audit"]


def fill(url: str, rows: int) -> float:
    rng = random.Random(7)
    now = utcnow()
    started = time.perf_counter()
    engine = get_engine(url)
    batch: list[dict] = []
    with engine.begin() as conn:
        for i in range(rows):
            batch.append({
                "created_at": now - timedelta(seconds=rng.randrange(365 * 86400)),
                "actor": f"user{rng.randrange(200):03d}@corp.test", "role": "staff",
                "action": rng.choice(ACTIONS), "customer_id": f"cus_{rng.randrange(50_000):08d}",
                "result": rng.choice(audit.RESULTS), "details": {"i": i}, "flow": None, "error": None,
                "object_id": None, "correlation_id": None,
            })
            if len(batch) == 5_000:
                conn.execute(insert(AuditLog), batch)
                batch = []
        if batch:
            conn.execute(insert(AuditLog), batch)
    if url.startswith("postgresql"):
        with engine.begin() as conn:
            conn.execute(text("ANALYZE audit_log"))
    return time.perf_counter() - started


def timed(fn, repeat: int = 5) -> float:
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - started)
    return round(statistics.median(runs) * 1000, 1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()

    schema = None
    if args.backend == "sqlite":
        url = f"sqlite:///{tempfile.mkdtemp(prefix='bench-audit-')}/audit.db"
    else:
        schema = f"bench_audit_{uuid.uuid4().hex[:6]}"
        admin = create_engine(args.pg_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = f"{args.pg_url}?options=-csearch_path%3D{schema}"
    try:
        migrate(url)
        fill_s = fill(url, args.rows)
        today = utcnow().date()
        cases = {
            "all_last_30_days": audit.AuditFilters(since=today - timedelta(days=30), until=today),
            "all_time": audit.AuditFilters(),
            "actor_exact": audit.AuditFilters(actor="user042@corp.test"),
            "actor_prefix": audit.AuditFilters(actor="user04"),
            "customer": audit.AuditFilters(customer_id="cus_00001234"),
            "action_and_result": audit.AuditFilters(action="merge_step", result="failed"),
            "rare_combination": audit.AuditFilters(actor="user199@corp.test", action="export_audit",
                                                   result="refused", since=today - timedelta(days=7), until=today),
        }
        figures: dict[str, float] = {}
        with Session(get_engine(url)) as session:
            for name, f in cases.items():
                figures[f"first_page_ms.{name}"] = timed(
                    lambda f=f: audit.search_audit(session=session, filters=f, page=1, page_size=25))
            figures["page_200_ms.all_time"] = timed(
                lambda: audit.search_audit(session=session, filters=audit.AuditFilters(), page=200, page_size=25))
            export_filters = cases["all_last_30_days"]
            started = time.perf_counter()
            size = len(audit.export_audit_csv(session=session, filters=export_filters).read())
            figures["export_30_days_s"] = round(time.perf_counter() - started, 2)
            figures["export_30_days_mb"] = round(size / 1e6, 1)
        result = {"bench": "audit", "backend": args.backend, "rows": args.rows, "fill_s": round(fill_s, 1),
                  **figures}
        print(json.dumps(result))
    finally:
        get_engine(url).dispose()
        if schema:
            with admin.connect() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


if __name__ == "__main__":
    main()
