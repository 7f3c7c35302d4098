"""One portal link at a time, against the sandbox over HTTP: each flow sends exactly the expected request,
each error ends in advice the user can act on, and every attempt leaves audit rows (never the URL)."""

from __future__ import annotations

from typing import Any

import pytest
import stripe
from sqlmodel import Session

from lib import portal
from lib.auth import User
from lib.config import get_settings
from lib.gateway import translate
from lib.portal import PortalError, PortalRequest
from tests.portal.helpers import (
    STAFF,
    SUPPORT,
    audit_rows,
    make_configuration,
    portal_requests,
    stripe_customer,
    stripe_subscription,
)
from tests.utils import factories
from tests.utils.net import free_port


def make(req: PortalRequest, session: Session, key: str | None = None, user: User = STAFF) -> portal.PortalLink:
    return portal.create_link(req, user=user, session=session, idempotency_key=key or portal.new_attempt_key())


def fail(req: PortalRequest, session: Session, key: str | None = None, user: User = STAFF) -> PortalError:
    with pytest.raises(PortalError) as info:
        make(req, session, key, user)
    return info.value


def assert_no_url_stored(session: Session, url: str) -> None:
    for row in audit_rows(session):
        assert url not in repr(row.model_dump()), "the portal URL must never be stored"


# --- flows ---------------------------------------------------------------------------------------


def test_plain_portal_link_sends_customer_and_default_return_url(sandbox: Any, session: Session,
                                                                  configured: str) -> None:
    cid = stripe_customer(sandbox, session)
    sandbox.clear_requests()
    link = make(PortalRequest(cid), session, key="portal-test-plain")

    (sent,) = portal_requests(sandbox)
    assert sent["method"] == "POST"
    assert sent["status"] == 200
    assert sent["params"] == {"customer": cid, "return_url": get_settings().portal_return_url}
    assert sent["idempotency_key"] == "portal-test-plain"
    assert link.url.startswith("http")
    assert link.session_id.startswith("bps_")
    (row,) = audit_rows(session)
    assert (row.actor, row.role, row.customer_id, row.flow, row.result, row.error) == (
        STAFF.email, "staff", cid, "portal", "succeeded", None)
    assert row.details["session_id"] == link.session_id
    assert row.details["idempotency_key"] == "portal-test-plain"
    assert_no_url_stored(session, link.url)


def test_payment_method_update_with_locale_return_url_and_configuration(sandbox: Any, session: Session,
                                                                        configured: str) -> None:
    other = make_configuration(sandbox, payment_method_update={"enabled": True})
    cid = stripe_customer(sandbox, session)
    sandbox.clear_requests()
    make(PortalRequest(cid, "payment_method_update", locale="de", return_url="https://example.com/back",
                       configuration_id=other), session)
    (sent,) = portal_requests(sandbox)
    assert sent["params"] == {
        "customer": cid, "return_url": "https://example.com/back", "locale": "de", "configuration": other,
        "flow_data": {"type": "payment_method_update"},
    }
    assert audit_rows(session)[0].flow == "payment_method_update"


def test_configuration_id_comes_from_settings(sandbox: Any, session: Session, configured: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTAL_CONFIGURATION_ID", configured)
    monkeypatch.setenv("PORTAL_RETURN_URL", "https://billing.example.com/done")
    get_settings.cache_clear()
    cid = stripe_customer(sandbox, session)
    sandbox.clear_requests()
    make(PortalRequest(cid), session)
    (sent,) = portal_requests(sandbox)
    assert sent["params"] == {"customer": cid, "return_url": "https://billing.example.com/done",
                              "configuration": configured}


@pytest.mark.parametrize("flow", ["subscription_cancel", "subscription_update"])
def test_subscription_flows_name_the_chosen_subscription(sandbox: Any, session: Session, flow: str) -> None:
    cid = stripe_customer(sandbox, session)
    sub = stripe_subscription(sandbox, session, cid)
    make_configuration(sandbox, subscription_cancel={"enabled": True}, subscription_update={
        "enabled": True, "default_allowed_updates": ["price"], "products": [],
    })
    sandbox.clear_requests()
    make(PortalRequest(cid, flow, subscription_id=sub), session)
    (sent,) = portal_requests(sandbox)
    assert sent["params"]["flow_data"] == {"type": flow, flow: {"subscription": sub}}
    (row,) = audit_rows(session)
    assert (row.flow, row.object_id, row.result) == (flow, sub, "succeeded")


def test_each_click_has_its_own_key_and_a_retry_reuses_it(sandbox: Any, session: Session, configured: str) -> None:
    cid = stripe_customer(sandbox, session)
    sandbox.clear_requests()
    a = make(PortalRequest(cid), session)
    b = make(PortalRequest(cid), session)
    keys = [r["idempotency_key"] for r in portal_requests(sandbox)]
    assert len(set(keys)) == 2
    assert a.session_id != b.session_id
    again = make(PortalRequest(cid), session, key=keys[0])  # the same attempt resent: Stripe replays it
    assert again.session_id == a.session_id


# --- errors --------------------------------------------------------------------------------------


def test_portal_not_configured_says_where_to_configure_it(sandbox: Any, session: Session) -> None:
    cid = stripe_customer(sandbox, session)
    err = fail(PortalRequest(cid, "payment_method_update"), session)
    assert err.kind == "not_configured"
    assert "Settings → Billing → Customer portal" in err.message
    assert "https://dashboard.stripe.com/test/settings/billing/portal" in err.message
    assert "PORTAL_CONFIGURATION_ID" in err.message
    (sent,) = portal_requests(sandbox)
    assert sent["status"] == 400
    (row,) = audit_rows(session)
    assert row.result == "failed"
    assert row.error == err.message
    assert row.details["stripe_status"] == 400


def test_unknown_configuration_id_names_the_setting(sandbox: Any, session: Session, configured: str) -> None:
    cid = stripe_customer(sandbox, session)
    err = fail(PortalRequest(cid, configuration_id="bpc_doesnotexist"), session)
    assert err.kind == "not_configured"
    assert "bpc_doesnotexist" in err.message
    assert "PORTAL_CONFIGURATION_ID" in err.message


def test_deleted_customer_offers_a_refresh(sandbox: Any, session: Session, configured: str) -> None:
    cid = stripe_customer(sandbox, session)
    sandbox.client.v1.customers.delete(cid)
    err = fail(PortalRequest(cid), session)
    assert err.kind == "customer_missing"
    assert err.offer_refresh
    assert cid in err.message
    assert "Refresh this customer" in err.message
    assert audit_rows(session)[0].result == "failed"


def test_customer_missing_in_stripe(sandbox: Any, session: Session, configured: str) -> None:
    factories.make_customer(session, id="cus_onlyinthecache", name="Ghost")
    err = fail(PortalRequest("cus_onlyinthecache", "payment_method_update"), session)
    assert err.kind == "customer_missing"
    assert err.offer_refresh


def test_subscription_of_another_customer_is_refused_from_the_cache(sandbox: Any, session: Session,
                                                                   configured: str) -> None:
    ada = stripe_customer(sandbox, session)
    bob = stripe_customer(sandbox, session, name="Bob", email="bob@example.com")
    bobs_sub = stripe_subscription(sandbox, session, bob)
    sandbox.clear_requests()
    err = fail(PortalRequest(ada, "subscription_cancel", subscription_id=bobs_sub), session)
    assert err.kind == "subscription_not_customers"
    assert bob in err.message
    assert portal_requests(sandbox) == [], "nothing is sent to Stripe when the cache already knows"
    (row,) = audit_rows(session)
    assert (row.result, row.object_id, row.flow) == ("failed", bobs_sub, "subscription_cancel")


def test_subscription_of_another_customer_is_refused_by_stripe(sandbox: Any, session: Session,
                                                               configured: str) -> None:
    ada = stripe_customer(sandbox, session)
    bob = stripe_customer(sandbox, session, name="Bob", email="bob@example.com")
    bobs_sub = stripe_subscription(sandbox, session, bob, cache=False)  # the cache has not seen it yet
    sandbox.clear_requests()
    err = fail(PortalRequest(ada, "subscription_update", subscription_id=bobs_sub), session)
    assert err.kind == "subscription_not_customers"
    assert bobs_sub in err.message
    (sent,) = portal_requests(sandbox)
    assert sent["status"] == 400
    assert audit_rows(session)[0].result == "failed"


def test_rate_limit_says_retry_later_and_the_retry_reuses_the_key(sandbox: Any, session: Session,
                                                                 configured: str) -> None:
    cid = stripe_customer(sandbox, session)
    sandbox.clear_requests()
    sandbox.faults(rate_limit=1.0)
    err = fail(PortalRequest(cid), session, key="portal-attempt-1")
    assert err.kind == "rate_limited"
    assert err.retry_same_key
    assert "Wait a minute" in err.message
    sandbox.faults()
    make(PortalRequest(cid), session, key="portal-attempt-1")
    sent = portal_requests(sandbox)
    assert {r["idempotency_key"] for r in sent} == {"portal-attempt-1"}
    assert sent[0]["status"] == 429
    assert sent[-1]["status"] == 200
    assert [r.result for r in audit_rows(session)] == ["failed", "succeeded"]


def test_stripe_server_error(sandbox: Any, session: Session, configured: str) -> None:
    cid = stripe_customer(sandbox, session)
    sandbox.faults(server_error=1.0)
    err = fail(PortalRequest(cid), session)
    assert err.kind == "server"
    assert "again" in err.message
    assert audit_rows(session)[0].result == "failed"


def test_network_failure(db: Any, session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRIPE_API_BASE", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    get_settings.cache_clear()
    err = fail(PortalRequest("cus_123"), session)
    assert err.kind == "network"
    assert err.retry_same_key
    assert "Try again" in err.message
    (row,) = audit_rows(session)
    assert row.result == "failed"
    assert "network" in row.error


def test_refused_role_is_audited_and_nothing_is_sent(sandbox: Any, session: Session, configured: str) -> None:
    cid = stripe_customer(sandbox, session)
    sandbox.clear_requests()
    err = fail(PortalRequest(cid), session, user=SUPPORT)
    assert err.kind == "refused"
    assert "staff, finance or admin" in err.message
    assert portal_requests(sandbox) == []
    (row,) = audit_rows(session)
    assert (row.actor, row.result, row.customer_id) == (SUPPORT.email, "refused", cid)


def test_bad_input_is_caught_before_stripe(sandbox: Any, session: Session) -> None:
    err = fail(PortalRequest("cus_x", "subscription_cancel"), session)
    assert err.kind == "bad_input"
    assert "Choose the subscription" in err.message
    err = fail(PortalRequest("cus_x", return_url="ftp://nope"), session)
    assert err.kind == "bad_input"
    assert "http" in err.message
    assert portal_requests(sandbox) == []
    assert [r.result for r in audit_rows(session)] == ["failed", "failed"]


BAD_RETURN_URLS = [
    ("https://", "has no host name"),
    ("http:///path-only", "has no host name"),
    ("https://exa mple.com/back", "contains a space"),
    ("https://example.com/back\x00", "contains a control character (NUL)"),
    ("https://example.com/a\r\nSet-Cookie: x=1", "contains a control character (carriage return)"),
    ("https://example.com/\tback", "contains a control character (tab)"),
    ("https://example.com:port/back", "is not a valid web address"),
    ("javascript:alert(1)", "must start with http:// or https://"),
]


@pytest.mark.parametrize(("url", "reason"), BAD_RETURN_URLS)
def test_a_bad_return_url_is_refused_before_stripe(sandbox: Any, session: Session, url: str, reason: str) -> None:
    err = fail(PortalRequest("cus_x", return_url=url), session)
    assert err.kind == "bad_input"
    assert err.message.startswith(f"The return URL {url.strip()!r} {reason}")
    assert portal_requests(sandbox) == []
    assert [r.result for r in audit_rows(session)] == ["failed"]  # the attempt is kept, on both databases


@pytest.mark.parametrize(("url", "reason"), BAD_RETURN_URLS[:3])
def test_a_bad_return_url_stops_a_bulk_run_before_stripe(sandbox: Any, session: Session, url: str,
                                                         reason: str) -> None:
    from tests.portal.helpers import FINANCE

    with pytest.raises(PortalError, match=reason):
        portal.bulk_links(["in_1"], user=FINANCE, session=session, return_url=url)
    assert portal_requests(sandbox) == []


@pytest.mark.parametrize("url", ["https://example.com/account?x=1#top", "http://localhost:8501/",
                                 "https://billing.example.com:8443/done"])
def test_good_return_urls_pass(url: str) -> None:
    assert portal.return_url_problem(url) is None



def test_invalid_key_says_to_check_the_setting(sandbox: Any, session: Session, configured: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    cid = stripe_customer(sandbox, session)
    monkeypatch.setenv("STRIPE_API_KEY", "sk_live_revokedrevokedrevoked1234")  # the sandbox refuses live keys
    get_settings.cache_clear()
    err = fail(PortalRequest(cid), session)
    assert err.kind == "auth"
    assert "STRIPE_API_KEY" in err.message
    assert "revokedrevoked" not in err.message, "the key is never shown"
    (row,) = audit_rows(session)
    assert row.result == "failed"
    assert row.details["stripe_status"] == 401
    assert "revoked" not in repr(row.details)


def test_missing_permission_names_the_portal_permission() -> None:
    # The sandbox has no restricted-key permissions, so this checks the wording for Stripe's real 403.
    exc = stripe.PermissionError(
        "The provided key 'rk_live_***1234' does not have the required permissions for this endpoint. Having "
        "the 'rak_billing_portal_session_write' permission would allow this request to continue.",
        http_status=403,
    )
    err = portal.portal_error(translate(exc), PortalRequest("cus_1"))
    assert err.kind == "permission"
    assert 'Write access to "Customer portal"' in err.message
    assert "billing portal sessions" in err.message


def test_subscription_unknown_to_stripe(sandbox: Any, session: Session, configured: str) -> None:
    cid = stripe_customer(sandbox, session)
    err = fail(PortalRequest(cid, "subscription_update", subscription_id="sub_gone"), session)
    assert err.kind == "subscription_missing"
    assert "sub_gone" in err.message
    assert err.offer_refresh


def test_canceled_subscription_the_cache_still_shows_live(sandbox: Any, session: Session, configured: str) -> None:
    cid = stripe_customer(sandbox, session)
    sub = stripe_subscription(sandbox, session, cid)  # cached as active
    sandbox.client.v1.subscriptions.cancel(sub)  # canceled in Stripe, the cache has not heard yet
    err = fail(PortalRequest(cid, "subscription_cancel", subscription_id=sub), session)
    assert err.kind == "subscription_ended"
    assert "canceled" in err.message
    assert err.offer_refresh


def test_flow_disabled_in_the_configuration_says_where_to_enable_it() -> None:
    # The sandbox does not enforce portal features, so this checks the wording for Stripe's real 400.
    exc = stripe.InvalidRequestError(
        "This subscription cannot be updated because the subscription update feature in the portal "
        "configuration is disabled.", param="flow_data[type]", http_status=400,
    )
    err = portal.portal_error(translate(exc), PortalRequest("cus_1", "subscription_update", subscription_id="sub_1"))
    assert err.kind == "flow_disabled"
    assert "Change a subscription's plan" in err.message
    assert "Settings → Billing → Customer portal" in err.message
