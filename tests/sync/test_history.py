"""The timeline's history: pass 2 lists the account's last 30 days of events into the cache, so a customer's
"Recent events" is filled after a backfill, without swallowing events the Events API refresh must still apply;
against the sandbox over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import stripe
from sqlalchemy import Engine, text
from sqlmodel import Session

from lib import queries
from lib.sync import run_sync
from tests.sync.fidelity import build_account
from tests.utils.sandbox import SandboxServer

PASS_1 = ["customers", "subscriptions", "invoices"]


def _stripe_event_ids(client: stripe.StripeClient, object_ids: set[str]) -> set[str]:
    """Every event the sandbox lists (the last 30 days) about one of `object_ids`."""
    return {e.id for e in client.v1.events.list({"limit": 100}).auto_paging_iter()
            if e.data.object.id in object_ids}


def _timeline(engine: Engine, customer_id: str, object_ids: set[str]) -> set[str]:
    with Session(engine) as session:
        rows = queries.customer_timeline(session=session, customer_id=customer_id, object_ids=object_ids,
                                         limit=500)
    return {r["id"] for r in rows}


def _history_complete(engine: Engine) -> bool:
    with Session(engine) as session:
        return queries.event_history(session=session)["complete"]


def test_a_full_backfill_fills_each_customers_timeline_with_its_last_30_days(db: Engine,
                                                                             sandbox: SandboxServer) -> None:
    client = sandbox.client
    acc = build_account(client)
    cid = acc.failing_customer
    about = {cid, *(s.id for s in client.v1.subscriptions.list({"customer": cid, "status": "all"}).data),
             *(i.id for i in client.v1.invoices.list({"customer": cid}).data),
             *(p.id for p in client.v1.customers.payment_methods.list(cid).data)}
    expected = _stripe_event_ids(client, about)

    result = run_sync(mode="full")

    assert result.status == "succeeded", result.error
    assert len(expected) >= 4  # created, card attached, subscription, invoice events at least
    assert _timeline(db, cid, about) == expected
    assert _history_complete(db) is True


def test_pass_1_alone_leaves_the_history_for_later_and_says_so(db: Engine, sandbox: SandboxServer) -> None:
    client = sandbox.client
    acc = build_account(client)
    sandbox.clear_requests()

    result = run_sync(mode="full", resources=PASS_1)

    assert result.status == "succeeded", result.error
    assert _history_complete(db) is False
    assert _timeline(db, acc.customers[0], set()) == set()
    listed = [r for r in sandbox.requests() if r["path"] == "/v1/events" and "created" in r["params"]]
    assert listed == []  # pass 1's budget is for what the pages show


def test_the_next_incremental_sync_fetches_a_missing_history(db: Engine, sandbox: SandboxServer) -> None:
    client = sandbox.client
    acc = build_account(client)
    assert run_sync(mode="full", resources=PASS_1).status == "succeeded"
    assert run_sync(mode="full", resources=["payment_methods"]).status == "succeeded"
    with db.begin() as conn:  # a cache backfilled before the history existed
        conn.execute(text("DELETE FROM stripe_events"))
        conn.execute(text("DELETE FROM sync_state WHERE resource = 'events'"))

    result = run_sync(mode="incremental")

    assert result.status == "succeeded", result.error
    assert _history_complete(db) is True
    assert _timeline(db, acc.customers[0], set()) == _stripe_event_ids(client, {acc.customers[0]})


def test_events_newer_than_a_resources_cursor_are_left_for_the_refresh_to_apply(db: Engine,
                                                                                sandbox: SandboxServer) -> None:
    client = sandbox.client
    acc = build_account(client)
    assert run_sync(mode="full", resources=PASS_1).status == "succeeded"
    cid = acc.customers[1]
    client.v1.customers.update(cid, {"name": "Renamed after pass 1"})  # newer than the customers' cursor
    assert run_sync(mode="full", resources=["payment_methods"]).status == "succeeded"  # pass 2 + history

    result = run_sync(mode="incremental")

    assert result.status == "succeeded", result.error
    with db.connect() as conn:
        name = conn.execute(text("SELECT name FROM customers WHERE id = :c"), {"c": cid}).scalar()
    assert name == "Renamed after pass 1"
