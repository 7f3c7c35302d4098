"""The sync's two passes: pass 1 fills what the pages show from list pages (default cards expanded, declines
from one listing of the open invoice payments), pass 2 completes every customer's card list; both against the
sandbox."""

from __future__ import annotations

import stripe
from sqlalchemy import Engine

from lib.sync import card_pass_progress, run_sync
from tests.sync.fidelity import CARD_FAILS, build_account, card, differences
from tests.utils.sandbox import SandboxServer

PASS_1 = ["customers", "subscriptions", "invoices"]


def _failing_renewal(client: stripe.StripeClient, sandbox: SandboxServer) -> str:
    """A customer whose renewal is declined (an attempted open invoice with a decline on its PaymentIntent)."""
    c = client.v1.customers.create({"name": "Declined", "email": "declined@example.com"})
    bad = card(client, c.id, CARD_FAILS)
    client.v1.customers.update(c.id, {"invoice_settings": {"default_payment_method": bad}})
    price = client.v1.prices.create({"currency": "usd", "unit_amount": 900, "product_data": {"name": "P"},
                                     "recurring": {"interval": "month"}}).id
    anchor = int(client.v1.customers.retrieve(c.id).created) + 2 * 86400
    client.v1.subscriptions.create({"customer": c.id, "default_payment_method": bad, "billing_cycle_anchor": anchor,
                                    "proration_behavior": "none", "items": [{"price": price}]})
    sandbox.advance(days=3)
    return c.id


def test_pass_1_shows_every_default_card_and_decline_without_per_object_requests(db: Engine,
                                                                                 sandbox: SandboxServer) -> None:
    client = sandbox.client
    acc = build_account(client)
    _failing_renewal(client, sandbox)
    for cid in acc.customers[:3]:
        card(client, cid)  # a second, non-default card: pass 2's business
    sandbox.clear_requests()

    result = run_sync(mode="full", resources=PASS_1)

    assert result.status == "succeeded", result.error
    paths = [r["path"] for r in sandbox.requests()]
    assert [p for p in paths if p.startswith("/v1/payment_intents")] == []  # neither retrieves nor a listing
    assert [p for p in paths if p.endswith("/payment_methods")] == []
    assert differences(client, db, all_cards=False) == []


def test_pass_2_completes_every_card_list_and_reports_progress(db: Engine, sandbox: SandboxServer) -> None:
    client = sandbox.client
    acc = build_account(client)
    for cid in acc.customers[:3]:
        card(client, cid)
    assert run_sync(mode="full", resources=PASS_1).status == "succeeded"
    done, total, complete = card_pass_progress(db)
    assert (done, complete) == (0, False)
    assert total == len(acc.customers)

    result = run_sync(mode="full", resources=["payment_methods"])

    assert result.status == "succeeded", result.error
    assert card_pass_progress(db) == (len(acc.customers), len(acc.customers), True)
    assert differences(client, db) == []


def test_pass_2_under_rate_limits_and_server_errors_ends_complete(db: Engine, sandbox: SandboxServer) -> None:
    client = sandbox.client
    acc = build_account(client)
    for cid in acc.customers[:3]:
        card(client, cid)
    assert run_sync(mode="full", resources=PASS_1).status == "succeeded"
    sandbox.faults(rate_limit=0.2, server_error=0.1, seed=3)

    result = run_sync(mode="full", resources=["payment_methods"])

    sandbox.faults()
    assert result.status == "succeeded", result.error
    assert differences(client, db) == []
