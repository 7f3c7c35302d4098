"""Billing portal: configurations, sessions, flow validation, and the local page a session URL opens."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request

import pytest
import stripe

from tests.sandbox.helpers import customer, price, subscribe
from tests.utils.sandbox import SandboxServer

FEATURES = {"invoice_history": {"enabled": True}, "payment_method_update": {"enabled": True},
            "subscription_cancel": {"enabled": True, "mode": "at_period_end"}}


def _page(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_no_default_configuration_fails_like_stripe(sandbox: SandboxServer) -> None:
    c = sandbox.client
    cus = customer(c, None)
    with pytest.raises(stripe.InvalidRequestError) as err:
        c.v1.billing_portal.sessions.create(params={"customer": cus.id, "return_url": "https://example.com"})
    e = err.value
    assert e.http_status == 400
    assert e.error.type == "invalid_request_error"
    assert e.user_message.startswith("No configuration provided and your test mode default configuration has "
                                     "not been created")
    assert "https://dashboard.stripe.com/test/settings/billing/portal" in e.user_message


def test_first_configuration_becomes_default(sandbox: SandboxServer) -> None:
    c = sandbox.client
    first = c.v1.billing_portal.configurations.create(params={
        "features": FEATURES, "business_profile": {"headline": "Acme billing"},
        "default_return_url": "https://example.com/account"})
    second = c.v1.billing_portal.configurations.create(params={"features": FEATURES})
    assert first.is_default is True
    assert second.is_default is False
    assert first.features.subscription_cancel.enabled is True
    assert first.features.customer_update.enabled is False
    assert [x.id for x in c.v1.billing_portal.configurations.list().data] == [second.id, first.id]
    assert [x.id for x in c.v1.billing_portal.configurations.list(params={"is_default": True}).data] == [first.id]
    cus = customer(c, None)
    s = c.v1.billing_portal.sessions.create(params={"customer": cus.id})
    assert s.configuration == first.id
    assert s.return_url == "https://example.com/account"
    other = c.v1.billing_portal.sessions.create(params={"customer": cus.id, "configuration": second.id,
                                                        "return_url": "https://example.com/x"})
    assert other.configuration == second.id
    with pytest.raises(stripe.InvalidRequestError):
        c.v1.billing_portal.sessions.create(params={"customer": cus.id, "configuration": "bpc_missing"})


def test_session_page_names_customer_and_flow_and_expires(sandbox: SandboxServer) -> None:
    c = sandbox.client
    c.v1.billing_portal.configurations.create(params={"features": FEATURES})
    cus = customer(c, name="Jörg Müller")
    sub = subscribe(c, cus.id, price(c).id)
    s = c.v1.billing_portal.sessions.create(params={
        "customer": cus.id, "return_url": "https://example.com/back?x=1", "locale": "de",
        "flow_data": {"type": "subscription_cancel", "subscription_cancel": {"subscription": sub.id}}})
    assert s.flow.type == "subscription_cancel"
    assert s.flow.subscription_cancel.subscription == sub.id
    assert s.locale == "de"
    assert s.url.startswith(sandbox.url)
    status, page = _page(s.url)
    assert status == 200
    assert "Jörg Müller" in page
    assert "subscription_cancel" in page
    assert sub.id in page
    assert 'href="https://example.com/back?x=1"' in page
    sandbox.advance(seconds=301)
    status, page = _page(s.url)
    assert status == 410
    assert "expired" in page


def test_flow_data_is_validated(sandbox: SandboxServer) -> None:
    c = sandbox.client
    c.v1.billing_portal.configurations.create(params={"features": FEATURES})
    pr = price(c)
    mine, theirs = customer(c), customer(c, email="other@example.com")
    my_sub, their_sub = subscribe(c, mine.id, pr.id), subscribe(c, theirs.id, pr.id)

    def session(flow: dict) -> stripe.billing_portal.Session:
        return c.v1.billing_portal.sessions.create(params={"customer": mine.id, "flow_data": flow})

    assert session({"type": "payment_method_update"}).flow.type == "payment_method_update"
    upd = session({"type": "subscription_update", "subscription_update": {"subscription": my_sub.id}})
    assert upd.flow.subscription_update.subscription == my_sub.id
    item = my_sub["items"].data[0].id
    confirm = session({"type": "subscription_update_confirm", "subscription_update_confirm": {
        "subscription": my_sub.id, "items": [{"id": item, "price": pr.id, "quantity": 2}]}})
    assert confirm.flow.subscription_update_confirm.items[0].quantity == 2
    bad = [
        ({"type": "subscription_cancel", "subscription_cancel": {"subscription": "sub_nope"}}, "subscription"),
        ({"type": "subscription_cancel", "subscription_cancel": {"subscription": their_sub.id}}, "subscription"),
        ({"type": "subscription_cancel"}, "subscription"),
        ({"type": "teleport"}, "type"),
        ({"type": "subscription_update_confirm",
          "subscription_update_confirm": {"subscription": my_sub.id}}, "items"),
    ]
    for flow, param_part in bad:
        with pytest.raises(stripe.InvalidRequestError) as err:
            session(flow)
        assert err.value.http_status == 400, flow
        assert param_part in (err.value.param or ""), flow
    c.v1.subscriptions.cancel(my_sub.id)
    with pytest.raises(stripe.InvalidRequestError):
        session({"type": "subscription_cancel", "subscription_cancel": {"subscription": my_sub.id}})
    with pytest.raises(stripe.InvalidRequestError) as err:
        c.v1.billing_portal.sessions.create(params={"customer": "cus_missing"})
    assert err.value.code == "resource_missing"


def _post(url: str, form: dict[str, str]) -> tuple[int, str]:
    data = urllib.parse.urlencode(form).encode()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, method="POST"), timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_the_page_can_play_the_customer(sandbox: SandboxServer) -> None:
    c = sandbox.client
    c.v1.billing_portal.configurations.create(params={"features": FEATURES})
    cus = customer(c, "4000000000000341")
    sub = subscribe(c, cus.id, price(c).id, trial_period_days=7)
    upd = c.v1.billing_portal.sessions.create(params={"customer": cus.id, "return_url": "https://example.com/r",
                                                      "flow_data": {"type": "payment_method_update"}})
    status, page = _page(upd.url)
    assert status == 200
    assert 'id="card-form"' in page
    status, page = _post(upd.url + "/card", {"number": "4000000000000002"})
    assert status == 402
    assert "declined" in page
    status, page = _post(upd.url + "/card", {"number": "4242424242424242"})
    assert status == 200
    assert "4242 is now the default" in page
    pm = c.v1.customers.retrieve(cus.id, params={"expand": ["invoice_settings.default_payment_method"]}
                                 ).invoice_settings.default_payment_method
    assert pm.card.last4 == "4242"
    assert pm.customer == cus.id
    sandbox.advance(days=8)  # the trial ends and the new card pays
    assert c.v1.subscriptions.retrieve(sub.id).status == "active"

    flow = {"type": "subscription_cancel", "subscription_cancel": {"subscription": sub.id}}
    cancel = c.v1.billing_portal.sessions.create(params={"customer": cus.id, "flow_data": flow})
    status, page = _post(cancel.url + "/cancel", {})
    assert status == 200
    assert "end of the period" in page
    after = c.v1.subscriptions.retrieve(sub.id)
    assert after.cancel_at_period_end is True
    assert after.status == "active"
    last = c.v1.events.list(params={"type": "customer.subscription.updated", "limit": 1}).data[0]
    assert last.data.object.id == sub.id
    assert last.data.previous_attributes.cancel_at_period_end is False
    assert _post(cancel.url + "/card", {"number": "4242424242424242"})[0] == 400  # not this flow's action
    sandbox.advance(seconds=301)
    assert _post(cancel.url + "/cancel", {})[0] == 410
