"""Customer detail's "Recent events" after a backfill: the events of the last 30 days once pass 2 has listed
them, and before that a note that they are not fetched yet (not an empty-looking timeline); against the
sandbox over HTTP, rendered by AppTest."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
from sqlalchemy import Engine
from sqlmodel import Session
from streamlit.testing.v1 import AppTest

from lib import cache_version
from lib.models import utcnow
from lib.sync import run_sync
from tests.utils.apptest import run_page
from tests.utils.factories import make_customer, make_sync_state
from tests.utils.sandbox import SandboxServer

PASS_1 = ["customers", "subscriptions", "invoices"]


def _events_table(at: AppTest) -> pd.DataFrame | None:
    return next((d.value for d in at.dataframe if "source" in d.value.columns), None)


def test_the_timeline_waits_for_pass_2_then_shows_the_last_30_days(db: Engine, sandbox: SandboxServer) -> None:
    client = sandbox.client
    customer = client.v1.customers.create({"name": "Timeline", "email": "timeline@example.com"})
    client.v1.customers.update(customer.id, {"name": "Timeline Renamed"})
    assert run_sync(mode="full", resources=PASS_1).status == "succeeded"

    before = run_page("customer_detail.py", query={"id": customer.id})

    assert _events_table(before) is None
    assert any("Events not fetched yet" in c.value for c in before.caption)

    assert run_sync(mode="full", resources=["payment_methods"]).status == "succeeded"
    cache_version.forget()  # the change stamp is re-read at most once a second: a reload a second later
    after = run_page("customer_detail.py", query={"id": customer.id})

    table = _events_table(after)
    assert sorted(table["type"]) == ["customer.created", "customer.updated"]
    assert set(table["source"]) == {"backfill"}


def test_a_customer_without_events_in_30_days_says_so(session: Session) -> None:
    c = make_customer(session, email="quiet@example.com", created=utcnow() - timedelta(days=90))
    make_sync_state(session, "events", backfill_completed_at=utcnow())

    at = run_page("customer_detail.py", query={"id": c.id})

    assert not at.exception, at.exception
    assert any("No events about this customer in the last 30 days" in c.value for c in at.caption)
