"""A failed Stripe call raises the GatewayError subclass for what went wrong, so callers catch it by type.

Real SDK errors from the sandbox over HTTP: a 404, 400s, a reused idempotency key, a 401, a 429 and a 500
(the sandbox's fault injection) and a Stripe that cannot be reached at all.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lib import gateway as gw
from lib.config import get_settings
from tests.utils.net import free_port
from tests.utils.sandbox import SandboxServer


@pytest.fixture
def customer(sandbox: SandboxServer) -> str:
    return sandbox.client.v1.customers.create({"email": "ada@example.com"}).id


@pytest.fixture
def faulty(sandbox: SandboxServer) -> Iterator[SandboxServer]:
    """The sandbox; faults set by the test are cleared after it."""
    yield sandbox
    sandbox.faults()


def retrieve_once(customer_id: str) -> object:
    """One GET /v1/customers/{id} through the gateway's core with the real SDK method, no retries."""
    return gw.call(gw.get_client().v1.customers.retrieve, customer_id, safe=True, max_attempts=1)


def test_a_missing_customer_is_not_found(sandbox: SandboxServer) -> None:
    with pytest.raises(gw.NotFound) as err:
        gw.customers.retrieve("cus_doesnotexist")
    assert err.value.status == 404
    assert err.value.code == "resource_missing"
    assert "Refresh the cache for this customer" in err.value.user_message


def test_not_found_is_a_gateway_error_and_not_an_invalid_request(sandbox: SandboxServer) -> None:
    with pytest.raises(gw.GatewayError) as err:
        gw.customers.retrieve("cus_doesnotexist")
    assert not isinstance(err.value, gw.InvalidRequest)


def test_a_missing_parameter_is_an_invalid_request_naming_it(customer: str) -> None:
    with pytest.raises(gw.InvalidRequest) as err:
        gw.subscriptions.create({"customer": customer}, idempotency_key="no-items")
    assert err.value.status == 400
    assert err.value.param == "items"


def test_an_unsupported_tax_id_type_is_an_invalid_request(customer: str) -> None:
    with pytest.raises(gw.InvalidRequest) as err:
        gw.tax_ids.create(customer, {"type": "zz_nope", "value": "1"}, idempotency_key="bad-tax")
    assert err.value.code == "parameter_invalid"


def test_a_reused_idempotency_key_with_other_content_is_a_conflict(customer: str) -> None:
    gw.customers.update(customer, {"metadata": {"tier": "gold"}}, idempotency_key="same-key")
    with pytest.raises(gw.IdempotencyConflict) as err:
        gw.customers.update(customer, {"metadata": {"tier": "silver"}}, idempotency_key="same-key")
    assert err.value.user_message.startswith("Stripe refused a repeated request with different content")


def test_a_rejected_key_is_auth_failed(sandbox: SandboxServer, customer: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRIPE_API_KEY", "sk_live_not_this_account")
    get_settings.cache_clear()
    with pytest.raises(gw.AuthFailed) as err:
        gw.customers.retrieve(customer)
    assert err.value.status == 401
    assert "STRIPE_API_KEY" in err.value.user_message


def test_a_429_is_rate_limited(faulty: SandboxServer, customer: str) -> None:
    faulty.faults(rate_limit=1.0)
    with pytest.raises(gw.RateLimited) as err:
        retrieve_once(customer)
    assert err.value.status == 429
    assert "Wait a minute" in err.value.user_message


def test_a_500_is_a_server_error_and_unavailable(faulty: SandboxServer, customer: str) -> None:
    faulty.faults(server_error=1.0)
    with pytest.raises(gw.Unavailable) as err:
        retrieve_once(customer)
    assert type(err.value) is gw.ServerError
    assert err.value.status == 500


def test_a_500_is_retried_for_a_read_until_stripe_answers(faulty: SandboxServer, customer: str) -> None:
    faulty.faults(server_error=0.5, seed=3)
    faulty.clear_requests()
    assert gw.customers.retrieve(customer)["id"] == customer
    assert [r["status"] for r in faulty.requests()][-1] == 200
    assert 500 in [r["status"] for r in faulty.requests()]


def test_an_unreachable_stripe_is_a_network_error_and_unavailable(sandbox: SandboxServer, customer: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRIPE_API_BASE", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    get_settings.cache_clear()
    sandbox.clear_requests()
    with pytest.raises(gw.Unavailable) as err:
        gw.customers.retrieve(customer)
    assert type(err.value) is gw.NetworkError
    assert err.value.status is None
    assert sandbox.requests() == []


def test_every_failure_kind_names_its_class() -> None:
    kinds = [cls.kind for cls in (gw.InvalidRequest, gw.IdempotencyConflict, gw.NotFound, gw.CardDeclined,
                                  gw.AuthFailed, gw.PermissionDenied, gw.RateLimited, gw.NetworkError,
                                  gw.ServerError)]
    assert len(set(kinds)) == len(kinds)
