"""What a list's total costs at scale: exact counts up to several limits, the sample estimate, and the company
search (plan and time), over a cache filled by `bench/pages.py --keep` (1M customers).

    .venv/bin/python bench/counts.py --url sqlite:////tmp/bp/cache.db
    .venv/bin/python bench/counts.py --url 'postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3Dbench_pages'

Prints one JSON object on its last line: per filter, how many rows match, then p50 / p95 ms (of --repeat runs)
of an exact count up to each limit (no time budget), of the estimate alone, and of the page query as the
Customers page runs it (rows + `count_rows` with its limit and budget), with the total it shows.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("STRIPE_API_KEY", "sk_test_bench")

from sqlalchemy import func, select, text  # noqa: E402
from sqlmodel import Session  # noqa: E402

from lib.db import get_engine  # noqa: E402
from lib.models import Customer  # noqa: E402
from lib.queries import customers, paging  # noqa: E402

LIMITS = (1_000, 10_000, 100_000)


def timed(fn: Callable[[], Any], repeat: int) -> dict[str, float]:
    fn()  # warm the page cache, like a running dashboard
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    s = sorted(samples)
    return {"p50": round(statistics.median(s), 1), "p95": round(s[min(len(s) - 1, round(0.95 * (len(s) - 1)))], 1)}


def plan(session: Session, stmt: Any) -> list[str]:
    """The database's plan for `stmt` (EXPLAIN QUERY PLAN on SQLite, EXPLAIN on PostgreSQL), one line a step."""
    compiled = stmt.compile(dialect=session.get_bind().dialect, compile_kwargs={"literal_binds": True})
    prefix = "EXPLAIN QUERY PLAN " if session.get_bind().dialect.name == "sqlite" else "EXPLAIN "
    rows = session.execute(text(prefix + str(compiled))).all()
    return [str(r[-1]) for r in rows]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True, help="a cache filled by bench/pages.py --keep")
    ap.add_argument("--repeat", type=int, default=10)
    args = ap.parse_args()
    url = args.url
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    filters = {
        "all (default list)": customers.CustomerFilters(),
        "currency usd (70%)": customers.CustomerFilters(currency="usd"),
        "sub status active (EXISTS, ~70%)": customers.CustomerFilters(sub_status="active"),
        "sub status past_due (EXISTS, 3%)": customers.CustomerFilters(sub_status="past_due"),
        "delinquent (3%)": customers.CustomerFilters(delinquent=True),
        "domain example7.com (~15,000)": customers.CustomerFilters(q="@example7.com"),
        "domain co42.com (~25)": customers.CustomerFilters(q="@co42.com"),
    }
    out: dict[str, Any] = {"bench": "counts", "url_kind": url.split(":")[0], "load_average_1m": os.getloadavg()[0],
                           "filters": {}}
    engine = get_engine(url)
    with Session(engine) as s:
        out["customers"] = s.execute(select(func.count()).select_from(Customer)).scalar_one()
        for name, f in filters.items():
            stmt = customers._customers_stmt(s, f)
            exact = paging._bounded_count(s, stmt, cap=10_000_000)[0]
            row: dict[str, Any] = {"matching": exact, "count_ms": {}}
            for limit in LIMITS:  # what an exact count up to `limit` costs, without the time budget
                row["count_ms"][f"{limit:,}"] = timed(lambda stmt=stmt, limit=limit: paging._bounded_count(
                    s, stmt, cap=limit), max(3, args.repeat // 3))
            estimate = paging._estimate_count(s, stmt, Customer.id, paging.ESTIMATE_SAMPLE)
            row["estimate"] = {"value": estimate, "label": paging.approx_count(estimate),
                               "error": round(estimate / exact - 1, 3) if exact else None,
                               "ms": timed(lambda stmt=stmt: paging._estimate_count(s, stmt, Customer.id,
                                                                              paging.ESTIMATE_SAMPLE), args.repeat)}
            row["page_ms"] = timed(lambda f=f: customers.search_customers(session=s, filters=f), args.repeat)
            row["page_label"] = customers.search_customers(session=s, filters=f).total_label
            out["filters"][name] = row
        domain = customers._customers_stmt(s, customers.CustomerFilters(q="@co42.com")).limit(26)
        out["plan_domain_page"] = plan(s, domain)
        out["plan_domain_count"] = plan(s, select(func.count()).select_from(
            customers._customers_stmt(s, customers.CustomerFilters(q="@example7.com")).with_only_columns(
                Customer.id).order_by(None).limit(paging.EXACT_COUNT_LIMIT + 1).subquery()))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
