"""Build a small but awkward Stripe account through the SDK; `differences` (the cache compared with Stripe
field by field) lives in bench/fidelity.py, which the backfill benchmark shares, and is re-exported here."""

from __future__ import annotations

from dataclasses import dataclass, field

import stripe

from bench.fidelity import differences as differences
from tests.utils.sandbox import SandboxServer

CARD_OK = "4242424242424242"
CARD_FAILS = "4000000000000341"  # attaches, every charge declined (generic_decline)


@dataclass
class Account:
    customers: list[str] = field(default_factory=list)
    subs: list[str] = field(default_factory=list)
    prices: list[str] = field(default_factory=list)
    cards: dict[str, str] = field(default_factory=dict)  # customer → card
    many_subs_customer: str = ""
    big_sub: str = ""
    failing_customer: str = ""


def card(client: stripe.StripeClient, customer: str, number: str = CARD_OK) -> str:
    pm = client.v1.payment_methods.create({"type": "card", "card": {
        "number": number, "exp_month": 12, "exp_year": 2031, "cvc": "123"}})
    client.v1.payment_methods.attach(pm.id, {"customer": customer})
    return pm.id


def build_account(client: stripe.StripeClient, *, customers: int = 6) -> Account:
    """Unicode names, emails differing only in case, a customer with 30 subscriptions, a subscription with 20
    items (Stripe's maximum: its first invoice has 20 lines), yearly and weekly prices, a failing card."""
    acc = Account()
    product = client.v1.products.create({"name": "Équipe Pro"})
    other = client.v1.products.create({"name": "Add-on"})
    for amount, interval, count, prod in ((1000, "month", 1, product), (12000, "year", 1, product),
                                          (700, "week", 2, other), (2500, "month", 3, other)):
        acc.prices.append(client.v1.prices.create({"product": prod.id, "currency": "eur", "unit_amount": amount,
                                                   "recurring": {"interval": interval, "interval_count": count}}).id)
    people = [("Zoë Ångström", "Zoe.Angstrom@Example.com", "+33 4 72 00 00 01"),
              ("zoe angstrom", "zoe.angstrom@example.COM", None),
              ("李小龍", "bruce@example.cn", "+852 2345 6789"), ("Олег Петров", "oleg@example.ru", None),
              ("José Nuñez", "jose+billing@gmail.com", "(415) 555-0100"), ("Anne Dupont", "anne@ex.fr", None)]
    for i in range(customers):
        name, email, phone = people[i % len(people)]
        c = client.v1.customers.create({"name": name, "email": email, **({"phone": phone} if phone else {}),
                                        "metadata": {"n": str(i)}})
        acc.customers.append(c.id)
        pm = card(client, c.id)
        acc.cards[c.id] = pm
        client.v1.customers.update(c.id, {"invoice_settings": {"default_payment_method": pm}})
        sub = client.v1.subscriptions.create({"customer": c.id, "default_payment_method": pm, "items": [
            {"price": acc.prices[i % 4], "quantity": 1 + i % 3}]})
        acc.subs.append(sub.id)
    acc.many_subs_customer = acc.customers[0]
    for k in range(30):
        sub = client.v1.subscriptions.create({"customer": acc.many_subs_customer,
                                              "default_payment_method": acc.cards[acc.many_subs_customer],
                                              "items": [{"price": acc.prices[k % 2]}]})
        acc.subs.append(sub.id)
    many_prices = [client.v1.prices.create({"product": other.id, "currency": "eur", "unit_amount": 100 + k,
                                            "recurring": {"interval": "month"}}).id for k in range(20)]
    big = client.v1.subscriptions.create({"customer": acc.customers[1],
                                          "default_payment_method": acc.cards[acc.customers[1]],
                                          "items": [{"price": p} for p in many_prices]})
    acc.big_sub = big.id
    acc.subs.append(big.id)
    # A customer whose first charge (at a billing anchor two days away) will fail.
    failing = client.v1.customers.create({"name": "Failing Card", "email": "fails@example.com"})
    bad = card(client, failing.id, CARD_FAILS)
    client.v1.customers.update(failing.id, {"invoice_settings": {"default_payment_method": bad}})
    anchor = int(client.v1.customers.retrieve(failing.id).created) + 2 * 86400
    sub = client.v1.subscriptions.create({"customer": failing.id, "default_payment_method": bad,
                                          "billing_cycle_anchor": anchor, "proration_behavior": "none",
                                          "items": [{"price": acc.prices[0]}]})
    acc.customers.append(failing.id)
    acc.cards[failing.id] = bad
    acc.subs.append(sub.id)
    acc.failing_customer = failing.id
    return acc


def apply_changes(client: stripe.StripeClient, acc: Account, sandbox: SandboxServer) -> None:
    """Updates, cancellations, a deleted customer, a detached card, then 3 days of clock: a failed renewal."""
    c0, c2, c3, c4 = acc.customers[0], acc.customers[2], acc.customers[3], acc.customers[4]
    client.v1.customers.update(c2, {"email": "NEW.Address@Example.org", "name": "Renamed Ünïcode",
                                    "metadata": {"n": "", "tier": "gold"}})
    client.v1.subscriptions.cancel(acc.subs[3])
    client.v1.subscriptions.update(acc.subs[4], {"cancel_at_period_end": True})
    client.v1.subscriptions.update(acc.subs[6], {"cancel_at_period_end": True})  # one of the 30
    client.v1.customers.delete(c3)
    spare = card(client, c4)
    client.v1.payment_methods.detach(spare)
    client.v1.payment_methods.detach(acc.cards[c0])
    sandbox.advance(days=3)
