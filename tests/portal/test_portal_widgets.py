"""The portal widgets under AppTest, against the sandbox: what a staff or finance user sees and clicks."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session
from streamlit.testing.v1 import AppTest

from app_pages.components.text import plain
from lib.models import Customer
from tests.portal.helpers import audit_rows, portal_requests, stripe_customer, stripe_subscription
from tests.utils import factories


def widget_script() -> None:
    """Renders one widget for the user and target put in session_state by the test."""
    import streamlit as st

    from app_pages.components.portal import bulk_portal_links_action, portal_link_action
    from lib.auth import User

    user = User(email=st.session_state["t_email"], name="Tester", roles=frozenset(st.session_state["t_roles"]))
    if st.session_state.get("t_invoices") is not None:
        bulk_portal_links_action(user, st.session_state["t_invoices"], key_prefix="t")
    else:
        portal_link_action(user, st.session_state["t_customer"], key_prefix="t",
                           default_flow=st.session_state.get("t_flow"),
                           subscription_id=st.session_state.get("t_sub"))


def run(roles: set[str], **state: Any) -> AppTest:
    at = AppTest.from_function(widget_script, default_timeout=30)
    at.session_state["t_email"] = "tester@example.com"
    at.session_state["t_roles"] = sorted(roles)
    for key, value in state.items():
        at.session_state[f"t_{key}"] = value
    return at.run()


def open_panel(at: AppTest) -> AppTest:
    at.button(key="t_portal_toggle").click().run()
    assert not at.exception, at.exception
    return at


def test_staff_makes_an_update_card_link_with_email_text(sandbox: Any, session: Session, configured: str) -> None:
    cid = stripe_customer(sandbox, session, name="Grace Hopper")
    at = open_panel(run({"staff"}, customer=cid, flow="payment_method_update"))
    assert at.selectbox(key="t_portal_flow").value == "payment_method_update"
    at.selectbox(key="t_portal_locale").set_value("fr")
    at.button(key="t_portal_make").click().run()
    assert not at.exception
    assert not at.error

    url, email = (c.value for c in at.code)
    (sent,) = portal_requests(sandbox)
    assert sent["params"]["locale"] == "fr"
    assert sent["params"]["flow_data"] == {"type": "payment_method_update"}
    assert url.startswith(sandbox.url + "/_sandbox/pages/portal/bps_")
    assert "Hi Grace Hopper" in email
    assert url in email
    assert "expires" in email
    assert any("Link made at" in s.value and "UTC" in s.value for s in at.success)
    assert any("expire" in w.value and "right before you send" in w.value for w in at.warning)
    assert audit_rows(session)[0].actor == "tester@example.com"


def test_cancel_flow_offers_the_customers_subscriptions(sandbox: Any, session: Session, configured: str) -> None:
    cid = stripe_customer(sandbox, session)
    sub = stripe_subscription(sandbox, session, cid)
    at = open_panel(run({"admin"}, customer=cid))
    at.selectbox(key="t_portal_flow").set_value("subscription_cancel").run()
    picker = at.selectbox(key="t_portal_sub")
    assert picker.options == [f"Pro plan · active · {sub}"]
    assert picker.value == sub
    at.button(key="t_portal_make").click().run()
    assert not at.error, [e.value for e in at.error]
    (sent,) = portal_requests(sandbox)
    assert sent["params"]["flow_data"] == {"type": "subscription_cancel", "subscription_cancel": {"subscription": sub}}


def test_not_configured_error_is_shown_without_a_link(sandbox: Any, session: Session) -> None:
    cid = stripe_customer(sandbox, session)
    at = open_panel(run({"finance"}, customer=cid))
    at.button(key="t_portal_make").click().run()
    assert not at.exception
    (err,) = at.error
    assert "Settings → Billing → Customer portal" in plain(err.value)
    assert not at.code, "no link is shown after a failure"


def test_rate_limit_try_again_resends_the_same_attempt(sandbox: Any, session: Session, configured: str) -> None:
    cid = stripe_customer(sandbox, session)
    sandbox.clear_requests()
    sandbox.faults(rate_limit=1.0)
    at = open_panel(run({"staff"}, customer=cid))
    at.button(key="t_portal_make").click().run()
    assert "rate-limiting" in plain(at.error[0].value)
    sandbox.faults()
    at.button(key="t_portal_retry").click().run()
    assert not at.error
    assert len(at.code) == 2
    sent = portal_requests(sandbox)
    assert len({r["idempotency_key"] for r in sent}) == 1
    assert sent[-1]["status"] == 200
    at.button(key="t_portal_make").click().run()  # a new click is a new attempt
    assert len({r["idempotency_key"] for r in portal_requests(sandbox)}) == 2


def test_deleted_customer_offers_refresh(sandbox: Any, session: Session, configured: str) -> None:
    cid = stripe_customer(sandbox, session)
    sandbox.client.v1.customers.delete(cid)
    at = open_panel(run({"staff"}, customer=cid))
    at.button(key="t_portal_make").click().run()
    assert "does not exist in Stripe" in plain(at.error[0].value)
    at.button(key="t_portal_refresh").click().run()
    assert not at.exception
    assert "refreshed from Stripe" in at.info[0].value
    session.expire_all()
    assert session.get(Customer, cid).deleted, "the refresh marks the customer deleted in the cache"


def test_support_is_refused_and_audited(sandbox: Any, session: Session, configured: str) -> None:
    at = run({"support"}, customer="cus_someone")
    at.button(key="t_portal_toggle").click().run()
    assert "may not do this" in at.error[0].value
    assert at.button(key="t_portal_toggle"), "the panel stays closed"
    assert not at.selectbox, "the panel stays closed"
    (row,) = audit_rows(session)
    assert row.result == "refused"
    assert row.customer_id == "cus_someone"
    assert portal_requests(sandbox) == []


def test_bulk_widget_offers_a_csv(sandbox: Any, session: Session, configured: str) -> None:
    ids = []
    for i in range(3):
        cust = sandbox.client.v1.customers.create(params={"name": f"B{i}", "email": f"b{i}@example.com"})
        factories.make_customer(session, id=cust.id, name=f"B{i}", email=f"b{i}@example.com")
        ids.append(factories.make_failed_invoice(session, cust.id).id)
    at = run({"finance"}, invoices=ids)
    at.button(key="t_bulk_portal_make").click().run()
    assert not at.exception
    assert not at.error
    assert any("Made 3 links" in s.value for s in at.success)
    assert len(portal_requests(sandbox)) == 3
    assert at.session_state["t_bulk_portal_result"]["csv"].count("\n") == 4


def test_bulk_widget_refuses_staff(sandbox: Any, session: Session, configured: str) -> None:
    at = run({"staff"}, invoices=["in_1"])
    at.button(key="t_bulk_portal_make").click().run()
    assert "finance or admin" in at.error[0].value
    assert audit_rows(session, "bulk_portal_links")[0].result == "refused"


def test_a_link_is_never_shown_next_to_another_customer(sandbox: Any, session: Session, configured: str) -> None:
    ada = stripe_customer(sandbox, session)
    bob = stripe_customer(sandbox, session, name="Bob", email="bob@example.com")
    at = open_panel(run({"staff"}, customer=ada))
    at.button(key="t_portal_make").click().run()
    assert len(at.code) == 2
    at.session_state["t_customer"] = bob  # the same page, now showing another customer
    at.run()
    assert not at.code, "Ada's link and panel are gone on Bob's page"
    assert not at.selectbox, "Ada's link and panel are gone on Bob's page"
