"""Protocol behaviour: keys, idempotency, error bodies, expand, faults and the request log."""

from __future__ import annotations

import time

import pytest
import stripe

from tests.sandbox.helpers import customer, price, subscribe
from tests.utils.sandbox import SandboxServer


def test_keys(sandbox: SandboxServer) -> None:
    restricted = stripe.StripeClient("rk_test_abc123", base_addresses={"api": sandbox.url})
    assert restricted.v1.customers.list().data == []
    live = stripe.StripeClient("sk_live_abcdefghijkl1234", base_addresses={"api": sandbox.url})
    with pytest.raises(stripe.AuthenticationError) as err:
        live.v1.customers.list()
    assert err.value.http_status == 401
    assert "1234" in err.value.user_message
    assert "abcdefghijkl" not in err.value.user_message


def test_idempotency_keys(sandbox: SandboxServer) -> None:
    c = sandbox.client
    first = c.v1.customers.create(params={"email": "idem@example.com"}, options={"idempotency_key": "k-1"})
    again = c.v1.customers.create(params={"email": "idem@example.com"}, options={"idempotency_key": "k-1"})
    assert again.id == first.id
    assert again.last_response.headers.get("Idempotent-Replayed") == "true"
    assert len(c.v1.customers.list().data) == 1
    with pytest.raises(stripe.IdempotencyError) as err:
        c.v1.customers.create(params={"email": "other@example.com"}, options={"idempotency_key": "k-1"})
    assert err.value.http_status == 400
    assert "k-1" in err.value.user_message
    log = sandbox.requests()
    assert [e["idempotency_key"] for e in log] == ["k-1", "k-1", None, "k-1"]
    assert log[0]["params"] == {"email": "idem@example.com"}
    assert log[0]["method"] == "POST"
    assert log[0]["path"] == "/v1/customers"
    assert log[0]["status"] == 200
    assert log[3]["status"] == 400


def test_nested_params_and_expand(sandbox: SandboxServer) -> None:
    c = sandbox.client
    cus = customer(c, metadata={"a": "1", "b": "2"}, address={"line1": "Main 1", "country": "DE"})
    sub = subscribe(c, cus.id, price(c).id)
    page = c.v1.subscriptions.list(params={"expand": ["data.customer", "data.default_payment_method",
                                                      "data.latest_invoice"]})
    got = page.data[0]
    assert got.customer.id == cus.id
    assert got.customer.address.country == "DE"
    assert got.latest_invoice.id == sub.latest_invoice
    assert got.default_payment_method is None
    full = c.v1.customers.retrieve(cus.id, params={"expand": ["invoice_settings.default_payment_method"]})
    assert full.invoice_settings.default_payment_method.card.last4 == "4242"
    assert full.metadata.to_dict() == {"a": "1", "b": "2"}
    logged = sandbox.requests()[0]["params"]
    assert logged["metadata"] == {"a": "1", "b": "2"}
    assert logged["address"]["line1"] == "Main 1"
    with pytest.raises(stripe.InvalidRequestError) as err:
        c.v1.customers.retrieve(cus.id, params={"expand": ["nonsense"]})
    assert err.value.param == "expand"


def test_wrongly_shaped_params_are_400s(sandbox: SandboxServer) -> None:
    c = sandbox.client
    cus = customer(c)
    bad_calls = [
        lambda: c.v1.customers.list(params={"starting_after": {"a": "b"}}),
        lambda: c.v1.subscriptions.create(params={"customer": cus.id, "items": "p"}),
        lambda: c.v1.subscriptions.create(params={"customer": [cus.id], "items": [{"price": "x"}]}),
        lambda: c.v1.customers.create(params={"metadata": ["a"]}),
        lambda: c.v1.events.list(params={"types": [{"a": "b"}]}),
        lambda: c.v1.billing_portal.sessions.create(params={"customer": {"id": cus.id}}),
    ]
    for bad in bad_calls:
        with pytest.raises(stripe.InvalidRequestError) as err:
            bad()
        assert err.value.http_status == 400, err.value
        assert err.value.param, err.value


def test_unknown_url_is_a_stripe_404(sandbox: SandboxServer) -> None:
    with pytest.raises(stripe.InvalidRequestError) as err:
        sandbox.client.raw_request("get", "/v1/unicorns")
    assert err.value.http_status == 404
    assert "Unrecognized request URL" in err.value.user_message


def test_rate_limit_fault_says_retry(sandbox: SandboxServer) -> None:
    sandbox.faults(rate_limit=1.0)
    with pytest.raises(stripe.RateLimitError) as err:
        sandbox.client.v1.customers.list()
    e = err.value
    assert e.http_status == 429
    assert e.error.code == "rate_limit"
    assert e.error.type == "invalid_request_error"
    assert e.headers["Stripe-Should-Retry"] == "true"
    assert e.headers["Retry-After"] == "1"
    sandbox.faults()
    assert sandbox.client.v1.customers.list().data == []


def test_server_error_and_latency_faults(sandbox: SandboxServer) -> None:
    sandbox.faults(server_error=1.0)
    with pytest.raises(stripe.APIError) as err:
        sandbox.client.v1.customers.list()
    assert err.value.http_status == 500
    sandbox.faults(latency_ms=[150, 160])
    t0 = time.monotonic()
    sandbox.client.v1.customers.list()
    assert time.monotonic() - t0 >= 0.15
    sandbox.faults()


def test_sdk_retries_through_faults_with_one_idempotency_key(sandbox: SandboxServer) -> None:
    sandbox.faults(rate_limit=0.5, seed=13)  # with this seed the first request is limited, the next ones pass
    retrying = stripe.StripeClient(sandbox.key, base_addresses={"api": sandbox.url}, max_network_retries=3)
    made = [retrying.v1.customers.create(params={"email": f"r{i}@example.com"}) for i in range(3)]
    sandbox.faults()
    assert len(sandbox.client.v1.customers.list(params={"limit": 100}).data) == 3 == len(made)
    log = sandbox.requests()
    statuses = [e["status"] for e in log if e["method"] == "POST"]
    assert statuses == [429, 200, 200, 200]
    keys_of_429 = {e["idempotency_key"] for e in log if e["status"] == 429}
    keys_of_200 = {e["idempotency_key"] for e in log if e["status"] == 200 and e["method"] == "POST"}
    assert keys_of_429 <= keys_of_200  # a retried create reused its key


def test_max_rps_ceiling(sandbox: SandboxServer) -> None:
    sandbox.faults(max_rps=3)
    limited = 0
    for _ in range(20):
        try:
            sandbox.client.v1.customers.list()
        except stripe.RateLimitError:
            limited += 1
    sandbox.faults()
    assert limited > 0
    served = sorted(e["time"] for e in sandbox.requests() if e["status"] == 200)
    busiest = max(sum(1 for t in served if start <= t < start + 1) for start in served)
    assert busiest <= 3  # never more than max_rps answered in any one-second window


def test_control_endpoints_are_never_faulted(sandbox: SandboxServer) -> None:
    sandbox.faults(rate_limit=1.0, server_error=1.0)
    assert sandbox.control("GET", "health") == {"ok": True}
    assert sandbox.now() > 0
    sandbox.clear_requests()
    assert sandbox.requests() == []
    sandbox.faults()
