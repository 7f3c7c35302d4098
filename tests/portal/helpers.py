"""Portal-link test helpers: users per role, a portal configuration, and customers that exist both in the
sandbox (made through the SDK) and in the cache (rows written with the factories, as the sync would)."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, select

from lib.auth import User
from lib.models import AuditLog
from tests.utils import factories

STAFF = User(email="sam.staff@example.com", name="Sam Staff", roles=frozenset({"staff"}))
FINANCE = User(email="fin@example.com", name="Fin Ance", roles=frozenset({"finance"}))
SUPPORT = User(email="sue.support@example.com", name="Sue Support", roles=frozenset({"support"}))
PORTAL_PATH = "/v1/billing_portal/sessions"


def make_configuration(sandbox: Any, **features: Any) -> str:
    """A portal configuration (the first one becomes the account default), with the given features on."""
    conf = sandbox.client.v1.billing_portal.configurations.create(params={
        "features": features or {
            "payment_method_update": {"enabled": True},
            "subscription_cancel": {"enabled": True},
            "invoice_history": {"enabled": True},
        },
    })
    return conf.id


def stripe_customer(sandbox: Any, session: Session, *, name: str = "Ada Lovelace",
                    email: str = "ada@example.com") -> str:
    """A customer in the sandbox and its cache row; returns its id."""
    cust = sandbox.client.v1.customers.create(params={"name": name, "email": email})
    factories.make_customer(session, id=cust.id, name=name, email=email)
    return cust.id


def stripe_subscription(sandbox: Any, session: Session, customer_id: str, *, cache: bool = True) -> str:
    """An active subscription in the sandbox (card on file), mirrored in the cache unless cache=False."""
    client = sandbox.client
    product = client.v1.products.create(params={"name": "Pro plan"})
    price = client.v1.prices.create(params={
        "product": product.id, "unit_amount": 2500, "currency": "usd", "recurring": {"interval": "month"},
    })
    pm = client.v1.payment_methods.attach("pm_card_visa", params={"customer": customer_id})
    client.v1.customers.update(customer_id, params={"invoice_settings": {"default_payment_method": pm.id}})
    sub = client.v1.subscriptions.create(params={"customer": customer_id, "items": [{"price": price.id}]})
    if cache:
        factories.make_subscription(session, customer_id, id=sub.id, status=sub.status, mrr=2500,
                                    items=[{"product_name": "Pro plan", "price_id": price.id,
                                            "product_id": product.id}])
    return sub.id


def portal_requests(sandbox: Any) -> list[dict[str, Any]]:
    return [r for r in sandbox.requests() if r["path"] == PORTAL_PATH]


def audit_rows(session: Session, action: str = "portal_link") -> list[AuditLog]:
    session.expire_all()
    return list(session.exec(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)).all())
