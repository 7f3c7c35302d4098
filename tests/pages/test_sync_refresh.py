"""The Sync page's "Refresh now" runs the real incremental sync against the sandbox (official SDK over HTTP)."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from lib.config import get_settings
from lib.models import Customer, SyncRun
from tests.utils.apptest import run_page
from tests.utils.sandbox import SandboxServer
from tests.utils.wait import wait_until


def test_refresh_now_pulls_new_customers_and_records_the_run(db: Engine, sandbox: SandboxServer) -> None:
    made = sandbox.client.v1.customers.create(params={"email": "Fresh.One@Example.com", "name": "Fresh One"})
    at = run_page("sync.py", timeout=120)
    def pressed() -> bool:  # on a shared PostgreSQL another test worker's sync may hold the one sync lock
        at.button(key="sync_refresh").click().run(timeout=120)
        return not any("Another sync is already running" in i.value for i in at.info)

    wait_until(pressed, timeout=120, interval=0.5, what="Refresh now ran (the sync lock was free)")
    assert not at.exception, at.exception
    assert any("Refreshed in" in s.value for s in at.success), [e.value for e in at.error]
    with Session(db) as s:
        cached = s.get(Customer, made.id)
        assert cached is not None
        assert cached.email_normalized == "fresh.one@example.com"
        assert s.query(SyncRun).filter(SyncRun.status == "succeeded").count() >= 1
    runs = next(d.value for d in at.dataframe if "mode" in d.value.columns)
    assert runs.iloc[0]["status"] == "succeeded"
    # the customers page sees the new customer right away (query caches were cleared by the refresh)
    found = run_page("customers.py", cust_search="FRESH.ONE@EXAMPLE.COM")
    assert list(found.dataframe[0].value["id"]) == [made.id]


def test_refresh_with_stripe_unreachable_is_a_clear_message(db: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.utils.net import free_port

    monkeypatch.setenv("STRIPE_API_BASE", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    get_settings.cache_clear()
    at = run_page("sync.py", timeout=120)
    at.button(key="sync_refresh").click().run(timeout=120)
    assert not at.exception, at.exception
    errors = " ".join(e.value for e in at.error)
    assert "refresh" in errors.lower()
    assert "Traceback" not in errors
