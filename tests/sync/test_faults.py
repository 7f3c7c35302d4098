"""Faults: 429s, 500s and latency change nothing; a sync killed with SIGKILL resumes from its last page."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import stripe
from sqlalchemy import Engine, text

from lib.sync import run_sync
from tests.sync.fidelity import build_account, card, differences
from tests.utils.sandbox import SandboxServer
from tests.utils.wait import wait_until

ROOT = Path(__file__).resolve().parents[2]


def test_rate_limits_server_errors_and_latency_leave_an_identical_cache(db: Engine, sandbox: SandboxServer) -> None:
    client = sandbox.client
    build_account(client, customers=3)
    sandbox.clear_requests()
    sandbox.faults(rate_limit=0.2, server_error=0.05, latency_ms=[5, 20], seed=4)
    result = run_sync(mode="full")
    log = sandbox.requests()
    sandbox.faults()
    assert result.status == "succeeded", result.error
    statuses = [r["status"] for r in log]
    assert statuses.count(429) >= 1, statuses
    assert statuses.count(429) + statuses.count(500) >= 3, statuses
    assert differences(client, db) == []
    # 5% of a small account's requests may miss the 500s: a second, full run with more of them.
    client.v1.customers.update(client.v1.customers.list({"limit": 1}).data[0].id, {"name": "After faults"})
    sandbox.clear_requests()
    sandbox.faults(server_error=0.4, latency_ms=[5, 20], seed=9)
    result = run_sync(mode="full")
    statuses = [r["status"] for r in sandbox.requests()]
    sandbox.faults()
    assert result.status == "succeeded", result.error
    assert statuses.count(500) >= 3, statuses
    assert differences(client, db) == []


def _seed_customers(client: stripe.StripeClient, n: int) -> None:
    def one(i: int) -> None:
        c = client.v1.customers.create({"email": f"bulk{i}@example.com", "name": f"Bulk {i}"})
        if i % 50 == 0:
            card(client, c.id)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(n)))


def _pages(log: list[dict], since: int = 0) -> dict[tuple[str, str], int]:
    """(top-level list path, starting_after) of each successful page fetch → how many times it was fetched.
    Nested fetches that complete a page (items, lines, payment intents, products) belong to that page."""
    out: dict[tuple[str, str], int] = {}
    for r in log:
        top = r["path"] in ("/v1/customers", "/v1/subscriptions", "/v1/invoices") or r["path"].endswith(
            "/payment_methods")
        if r["seq"] > since and r["method"] == "GET" and r["status"] == 200 and top:
            key = (r["path"], str((r["params"] or {}).get("starting_after")))
            out[key] = out.get(key, 0) + 1
    return out


def _resource(path: str) -> str:
    return "payment_methods" if path.endswith("/payment_methods") else path


def test_sync_killed_mid_backfill_resumes_and_refetches_at_most_one_page(
        db: Engine, sandbox: SandboxServer, db_url: str) -> None:
    client = sandbox.client
    _seed_customers(client, 250)
    build_account(client, customers=2)
    sandbox.clear_requests()
    env = {**os.environ, "DATABASE_URL": db_url, "STRIPE_API_BASE": sandbox.url, "STRIPE_API_KEY": sandbox.key}
    cmd = [sys.executable, "-m", "lib", "sync", "--full", "--quiet"]
    slow = subprocess.Popen(cmd, cwd=ROOT, env={**env, "STRIPE_REQUESTS_PER_SECOND": "2"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def customers_page_committed() -> bool:
        with db.connect() as conn:
            return bool(conn.execute(text("SELECT COUNT(*) FROM customers")).scalar())

    try:
        wait_until(customers_page_committed, timeout=30, what="a first committed page of customers")
    finally:
        os.kill(slow.pid, signal.SIGKILL)
        slow.wait()
    with db.connect() as conn:
        cached = conn.execute(text("SELECT COUNT(*) FROM customers")).scalar()
        cursor = conn.execute(text("SELECT backfill_cursor FROM sync_state WHERE resource = 'customers'")).scalar()
    # killed mid-backfill, with a committed page
    assert 0 < cached < 253
    assert cursor is not None
    first = sandbox.requests()
    last_seq = max(r["seq"] for r in first)

    done = subprocess.run(cmd, cwd=ROOT, env={**env, "STRIPE_REQUESTS_PER_SECOND": "400"}, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "resuming the interrupted backfill" in done.stderr
    before, after = _pages(first), _pages(sandbox.requests(), since=last_seq)
    assert differences(client, db) == []
    refetched: dict[str, int] = {}
    for key in set(before) & set(after):
        refetched[_resource(key[0])] = refetched.get(_resource(key[0]), 0) + 1
    assert all(n <= 1 for n in refetched.values()), refetched
    with db.connect() as conn:
        statuses = conn.execute(text("SELECT status, error FROM sync_runs ORDER BY id")).all()
    assert statuses[0][0] == "failed"
    assert "interrupted" in statuses[0][1]
    assert statuses[-1][0] == "succeeded"
