"""Short builders for sandbox tests (all through the official SDK)."""

from __future__ import annotations

import stripe

VISA = "4242424242424242"
DECLINE_ALWAYS = "4000000000000341"
INSUFFICIENT = "4000000000009995"
EXPIRED = "4000000000000069"
BAD_CVC = "4000000000000127"
DECLINE_AT_ATTACH = "4000000000000002"


def card(client: stripe.StripeClient, number: str = VISA) -> stripe.PaymentMethod:
    return client.v1.payment_methods.create(
        params={"type": "card", "card": {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": "123"}})


def customer(client: stripe.StripeClient, number: str | None = VISA, **fields: object) -> stripe.Customer:
    """A customer, with the given test card attached and set as default (number=None: no card)."""
    cus = client.v1.customers.create(params={"email": "ann@example.com", "name": "Ann Lee", **fields})
    if number:
        pm = card(client, number)
        client.v1.payment_methods.attach(pm.id, params={"customer": cus.id})
        cus = client.v1.customers.update(cus.id, params={"invoice_settings": {"default_payment_method": pm.id}})
    return cus


def price(client: stripe.StripeClient, amount: int = 1500, currency: str = "usd", interval: str = "month",
          count: int = 1, name: str = "Pro") -> stripe.Price:
    return client.v1.prices.create(params={"currency": currency, "unit_amount": amount,
                                           "recurring": {"interval": interval, "interval_count": count},
                                           "product_data": {"name": name}})


def subscribe(client: stripe.StripeClient, cus_id: str, price_id: str, **params: object) -> stripe.Subscription:
    return client.v1.subscriptions.create(params={"customer": cus_id, "items": [{"price": price_id}], **params})
