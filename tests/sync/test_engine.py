"""The engine's guard rails: one sync at a time, retention expiry, empty answers, and the CLI's exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import Engine, text

from lib.sync import run_sync, sync_lock
from tests.sync.fidelity import build_account, differences
from tests.utils.sandbox import SandboxServer

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lib", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)


def test_second_sync_names_the_holder_and_exits_0_without_work(db: Engine, sandbox: SandboxServer) -> None:
    sandbox.client.v1.customers.create({"email": "a@example.com"})
    with sync_lock(db, "billing-worker-2:4242"):
        done = cli("sync", "--full")
        result = run_sync(mode="full")
    assert done.returncode == 0, done.stderr
    assert "another sync is running (billing-worker-2:4242" in done.stdout
    assert result.status == "skipped"
    assert "billing-worker-2:4242" in (result.error or "")
    with db.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM customers")).scalar() == 0  # no work was done
        runs = conn.execute(text("SELECT status FROM sync_runs")).scalars().all()
    assert runs == ["skipped", "skipped"]
    assert run_sync(mode="full").status == "succeeded"  # the lock is free again


def test_cli_reports_an_unreachable_stripe_in_one_line_and_exits_1(db: Engine) -> None:
    done = cli("sync", "--full", env={"STRIPE_API_BASE": "http://127.0.0.1:9"})
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    assert "could not be reached" in errors[0], done.stderr
    assert "Traceback" not in done.stderr


def test_cursor_past_the_30_day_retention_says_so_and_backfills(db: Engine, sandbox: SandboxServer) -> None:
    client = sandbox.client
    build_account(client, customers=2)
    assert run_sync(mode="full").status == "succeeded"
    customer = client.v1.customers.list({"limit": 1}).data[0]
    client.v1.customers.update(customer.id, {"name": "Changed Before The Gap"})
    sandbox.advance(days=31)  # the update's event, and the cursor's, are now past retention
    result = run_sync(mode="incremental")
    assert result.status == "succeeded", result.error
    assert any("older than Stripe's 30-day event retention" in n for n in result.notes), result.notes
    assert differences(client, db) == []


def test_an_empty_answer_for_a_full_cache_is_a_failure_and_removes_nothing(db: Engine, sandbox: SandboxServer) -> None:
    build_account(sandbox.client, customers=2)
    assert run_sync(mode="full", resources=["customers"]).status == "succeeded"
    sandbox.reset()  # as if the key now pointed at another (empty) account
    result = run_sync(mode="full", resources=["customers"])
    assert result.status == "failed"
    assert "listed no customers although the cache holds 3" in (result.error or "")
    with db.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM customers WHERE deleted")).scalar() == 0


def test_refresh_customer_brings_one_customer_up_to_date(db: Engine, sandbox: SandboxServer) -> None:
    from lib.sync import refresh_customer
    from tests.sync.fidelity import card

    client = sandbox.client
    acc = build_account(client, customers=2)
    assert run_sync(mode="full").status == "succeeded"
    cid = acc.customers[0]
    client.v1.customers.update(cid, {"name": "Refreshed Name", "email": "REFRESHED@example.com"})
    client.v1.subscriptions.update(acc.subs[0], {"cancel_at_period_end": True})
    new_card = card(client, cid)
    client.v1.payment_methods.detach(acc.cards[cid])
    requests_before = len(sandbox.requests())
    refresh_customer(cid)
    assert len(sandbox.requests()) - requests_before < 15  # one customer's lists, not a sync
    assert differences(client, db) == []
    with db.connect() as conn:
        pms = conn.execute(text("SELECT id FROM payment_methods WHERE customer_id = :c"), {"c": cid}).scalars()
        assert set(pms) == {new_card}


def test_refresh_of_a_deleted_customer_marks_it_and_frees_its_cards(db: Engine, sandbox: SandboxServer) -> None:
    from lib.sync import refresh_customer

    client = sandbox.client
    acc = build_account(client, customers=2)
    assert run_sync(mode="full").status == "succeeded"
    gone = acc.customers[1]
    client.v1.customers.delete(gone)
    refresh_customer(gone)
    with db.connect() as conn:
        deleted = conn.execute(text("SELECT deleted FROM customers WHERE id = :c"), {"c": gone}).scalar()
        cards = conn.execute(text("SELECT COUNT(*) FROM payment_methods WHERE customer_id = :c"), {"c": gone}).scalar()
        live = conn.execute(text("SELECT COUNT(*) FROM subscriptions WHERE customer_id = :c AND status <> 'canceled'"),
                            {"c": gone}).scalar()
    assert deleted in (True, 1)
    assert cards == 0
    assert live == 0


def test_events_after_a_backfill_of_an_eventless_account_are_applied_oldest_first(
        db: Engine, sandbox: SandboxServer) -> None:
    client = sandbox.client
    assert run_sync(mode="full").status == "succeeded"  # an empty account: no event to start the cursors at
    ids = [client.v1.customers.create({"email": f"late{i}@example.com", "name": f"Late {i}"}).id
           for i in range(130)]  # more than one page of events
    client.v1.customers.update(ids[0], {"name": "Renamed Later"})  # an older state must not win
    sandbox.advance(seconds=2)
    client.v1.customers.update(ids[0], {"name": "Renamed Last"})
    result = run_sync(mode="incremental", resources=["customers"])
    assert result.status == "succeeded", result.error
    assert result.counts["customers"] >= 130
    assert differences(client, db) == []
    with db.connect() as conn:
        assert conn.execute(text("SELECT name FROM customers WHERE id = :id"), {"id": ids[0]}).scalar() == \
            "Renamed Last"
    again = run_sync(mode="incremental", resources=["customers"])  # the cursor moved to the newest event
    assert again.status == "succeeded"
    assert again.counts["customers"] == 0
