"""Ids are checked by shape before they go into a Stripe request path: `cus_x/../cus_Y` reads no one.

Against the sandbox through the real gateway; the sandbox's request log shows that nothing was sent.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from lib import gateway as gw
from lib import ids
from lib.sync import refresh_customer
from tests.utils.sandbox import SandboxServer


@pytest.fixture
def two_customers(sandbox: SandboxServer) -> tuple[str, str]:
    x = sandbox.client.v1.customers.create({"email": "x@example.com"}).id
    y = sandbox.client.v1.customers.create({"email": "victim@example.com"}).id
    sandbox.clear_requests()
    return x, y


def test_a_traversing_customer_id_makes_no_request_and_says_why(
        sandbox: SandboxServer, two_customers: tuple[str, str]) -> None:
    x, y = two_customers
    hostile = f"{x}/../{y}"
    with pytest.raises(gw.GatewayError) as err:
        gw.customers.retrieve(hostile)
    assert sandbox.requests() == []
    assert err.value.user_message.startswith(f"{hostile!r} is not a customer id")


@pytest.mark.parametrize("path", [
    "/v1/customers/{x}/../{y}",
    "/v1/customers/{x}%2F..%2F{y}",
    "/v1/customers/{y}?expand[]=x",
    "/v1/customers/{x}/tax_ids/../../{y}",
    "/v1/subscriptions/{y}",  # a customer id where a subscription id belongs
])
def test_generic_reads_refuse_paths_with_a_bad_id_before_any_request(
        sandbox: SandboxServer, two_customers: tuple[str, str], path: str) -> None:
    x, y = two_customers
    with pytest.raises(gw.InvalidRequest):
        gw.retrieve(path.format(x=x, y=y))
    assert sandbox.requests() == []


@pytest.mark.parametrize("call", [
    lambda bad: gw.customers.cash_balance(bad),
    lambda bad: gw.customers.update(bad, {"metadata": {"a": "b"}}, idempotency_key="k1"),
    lambda bad: gw.tax_ids.create(bad, {"type": "eu_vat", "value": "DE123456789"}, idempotency_key="k2"),
    lambda bad: gw.balance_transactions.create(bad, {"amount": -100, "currency": "usd", "description": "d",
                                                     "metadata": {}}, idempotency_key="k3"),
    lambda bad: gw.subscriptions.update(bad, {"metadata": {"a": "b"}}, idempotency_key="k4"),
    lambda bad: refresh_customer(bad),
])
def test_every_id_taking_call_refuses_a_bad_id_before_any_request(
        sandbox: SandboxServer, two_customers: tuple[str, str], call: Callable[[str], object]) -> None:
    x, y = two_customers
    with pytest.raises(gw.GatewayError):
        call(f"{x}/../{y}")
    assert sandbox.requests() == []


def test_well_formed_ids_still_reach_stripe(sandbox: SandboxServer, two_customers: tuple[str, str]) -> None:
    x, _ = two_customers
    assert gw.customers.retrieve(x)["id"] == x


@pytest.mark.parametrize(("kind", "good", "bad"), [
    (ids.IdKind.CUSTOMER, "cus_NffrFeUfNV2Hib", "cus_x/../cus_Y"),
    (ids.IdKind.SUBSCRIPTION, "sub_1MowQVLkdIwHu7ix", "sub_"),
    (ids.IdKind.INVOICE, "in_1MtHbELkdIwHu7ix", "in_1 2"),
    (ids.IdKind.PAYMENT_METHOD, "card_1Mx", "pm_1\x00"),
])
def test_id_shapes(kind: ids.IdKind, good: str, bad: str) -> None:
    assert ids.is_id(kind, good)
    assert not ids.is_id(kind, bad)
