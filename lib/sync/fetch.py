"""Stripe reads that complete an object before it is written: nested lists cut at 10 (subscription items,
invoice lines), an unpaid invoice's last decline, product names for subscription items; and the list paths
of the cached resources."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

from lib import mapping
from lib import stripe_gateway as gw
from lib.config import Settings
from lib.sync.sql import Obj

LIST_PATHS = {"customers": "/v1/customers", "subscriptions": "/v1/subscriptions", "invoices": "/v1/invoices"}
LIST_PARAMS: dict[str, Obj] = {"subscriptions": {"status": "all"}}
RETRIEVE_PATHS = {**LIST_PATHS, "payment_methods": "/v1/payment_methods"}


class ProductNames:
    """Product id → name for subscription items (Stripe cannot expand price.product 5 levels deep)."""

    def __init__(self, settings: Settings | None = None) -> None:
        self._names: dict[str, str] | None = None
        self._lock = threading.Lock()
        self._settings = settings

    def resolve(self, objs: Iterable[Obj]) -> dict[str, str]:
        with self._lock:
            if self._names is None:
                self._names = {p["id"]: p.get("name") or "" for p in
                               gw.iter_list("/v1/products", settings=self._settings)}
            for obj in objs:
                for item in mapping._list_data(obj.get("items")):
                    pid = mapping.ref(mapping.dig(mapping._price_of(item), "product"))
                    if pid and pid not in self._names:
                        try:
                            product, _ = gw.retrieve(f"/v1/products/{pid}", settings=self._settings)
                            self._names[pid] = product.get("name") or ""
                        except gw.GatewayError:
                            self._names[pid] = ""
            return self._names


_shared: dict[tuple[str, str], tuple[float, ProductNames]] = {}


def shared_products(settings: Settings, ttl: float = 600.0) -> ProductNames:
    """Product names for webhook deliveries, listed once per 10 minutes rather than per delivery."""
    key = (settings.stripe_api_base, settings.stripe_api_key)
    born, names = _shared.get(key, (0.0, None))  # type: ignore[assignment]
    if names is None or time.monotonic() - born > ttl:
        names = ProductNames(settings)
        _shared[key] = (time.monotonic(), names)
    return names


def complete(resource: str, obj: Obj, settings: Settings | None = None) -> None:
    """Fetch the rest of nested lists cut at 10 (subscription items, invoice lines)."""
    if resource == "subscriptions":
        gw.complete_nested(obj, "items", "/v1/subscription_items", {"subscription": obj["id"]}, settings=settings)
    elif resource == "invoices" and obj.get("id"):
        gw.complete_nested(obj, "lines", f"/v1/invoices/{obj['id']}/lines", settings=settings)
        _attach_last_payment_error(obj, settings)


def _attach_last_payment_error(invoice: Obj, settings: Settings | None) -> None:
    """Put the decline of the last attempt where mapping reads it.

    In the current API an invoice's failure lives on the PaymentIntent of its last invoice payment, 5 expand
    levels below a list (Stripe allows 4), so it costs one call — made only for unpaid invoices that were
    attempted, the only ones whose failure the cache shows.
    """
    if invoice.get("status") not in ("open", "uncollectible") or not (invoice.get("attempt_count") or 0):
        return
    payments = invoice.get("payments")
    if not isinstance(payments, dict):  # not included: ask for them
        data = gw.list_page("/v1/invoice_payments", {"invoice": invoice["id"]}, settings=settings).data
        payments = invoice["payments"] = {"object": "list", "data": data, "has_more": False}
    entries = [p for p in mapping._list_data(payments) if mapping.dig(p, "payment", "payment_intent")]
    if not entries:
        return
    last = max(entries, key=lambda p: (p.get("created") or 0))
    pi = last["payment"]["payment_intent"]
    if isinstance(pi, str):
        last["payment"] = {**last["payment"], "payment_intent": gw.retrieve(f"/v1/payment_intents/{pi}",
                                                                            settings=settings)[0]}
