"""The Sync page's webhook section reads the endpoint's state from Stripe (through the sync into the cache) and
the last delivery from the cache: an endpoint set up in Stripe is shown as such, a disabled or missing one
says what to do. Against the sandbox over HTTP, on SQLite and PostgreSQL, rendered by AppTest."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import Engine
from sqlmodel import Session
from streamlit.testing.v1 import AppTest

from lib.sync import run_sync
from tests.utils.apptest import run_page
from tests.utils.factories import make_event
from tests.utils.sandbox import SandboxServer

URL = "http://127.0.0.1:9/webhooks/stripe"  # nothing listens: deliveries fail quietly in the sandbox


def _texts(at: AppTest) -> str:
    return " ".join(e.value for e in [*at.info, *at.warning, *at.caption, *at.markdown])


def _endpoints(at: AppTest) -> pd.DataFrame:
    return next(d.value for d in at.dataframe if "url" in d.value.columns)


def test_an_endpoint_configured_in_stripe_is_shown_enabled_before_any_delivery(db: Engine,
                                                                               sandbox: SandboxServer) -> None:
    sandbox.client.v1.webhook_endpoints.create({"url": URL, "enabled_events": ["*"],
                                                "description": "**Dashboard** <b>hook</b>"})
    assert run_sync(mode="incremental").status == "succeeded"

    at = run_page("sync.py")

    assert not at.exception, at.exception
    table = _endpoints(at)
    assert list(table["url"]) == [URL]
    assert list(table["status"]) == ["enabled"]
    assert list(table["events"]) == ["all events"]
    assert list(table["description"]) == ["**Dashboard** <b>hook</b>"]  # as text, in a table cell
    assert "no delivery has reached the cache yet" in _texts(at)
    assert "No webhook delivery received yet" not in _texts(at)


def test_a_delivery_in_the_cache_replaces_the_waiting_note(db: Engine, sandbox: SandboxServer,
                                                           session: Session) -> None:
    sandbox.client.v1.webhook_endpoints.create({"url": URL, "enabled_events": ["invoice.paid"]})
    assert run_sync(mode="incremental").status == "succeeded"
    make_event(session, "in_1", source="webhook", type="invoice.paid")

    at = run_page("sync.py")

    assert list(_endpoints(at)["events"]) == ["invoice.paid"]
    assert {m.label: m.value for m in at.metric}["Last received"] == "just now"
    assert "no delivery has reached the cache yet" not in _texts(at)


def test_an_endpoint_disabled_in_stripe_says_how_to_enable_it(db: Engine, sandbox: SandboxServer) -> None:
    endpoint = sandbox.client.v1.webhook_endpoints.create({"url": URL, "enabled_events": ["*"]})
    assert run_sync(mode="incremental").status == "succeeded"
    sandbox.client.v1.webhook_endpoints.update(endpoint.id, {"disabled": True})
    assert run_sync(mode="incremental").status == "succeeded"

    at = run_page("sync.py")

    assert list(_endpoints(at)["status"]) == ["disabled"]
    assert any("Every webhook endpoint is disabled" in w.value for w in at.warning)


def test_no_endpoint_in_stripe_says_what_to_set_up(db: Engine, sandbox: SandboxServer) -> None:
    endpoint = sandbox.client.v1.webhook_endpoints.create({"url": URL, "enabled_events": ["*"]})
    assert run_sync(mode="incremental").status == "succeeded"
    sandbox.client.v1.webhook_endpoints.delete(endpoint.id)
    assert run_sync(mode="incremental").status == "succeeded"

    at = run_page("sync.py")

    assert not [d for d in at.dataframe if "url" in d.value.columns]  # the deleted endpoint is gone
    warning = next(w.value for w in at.warning if "no webhook endpoint" in w.value)
    assert "/webhooks/stripe" in warning
    assert "STRIPE_WEBHOOK_SECRET" in warning


def test_before_any_sync_the_page_says_the_endpoints_are_not_read_yet(db: Engine) -> None:
    at = run_page("sync.py")

    assert not at.exception, at.exception
    assert any("have not been read yet" in i.value for i in at.info)
