"""Stripe reads that complete an object before it is written: nested lists cut at 10 (subscription items,
invoice lines), an unpaid invoice's last decline, product names for subscription items; and the list paths
of the cached resources."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from lib import gateway as gw
from lib import mapping
from lib.config import Settings
from lib.sync.sql import Obj

LIST_PATHS = {"customers": "/v1/customers", "subscriptions": "/v1/subscriptions", "invoices": "/v1/invoices"}
# Pass 1 expands what the pages show into the list pages themselves: a customer's default card comes with the
# customer, a subscription's with the subscription (two levels each, within Stripe's four).
LIST_PARAMS: dict[str, Obj] = {
    "customers": {"expand": ["data.invoice_settings.default_payment_method"]},
    "subscriptions": {"status": "all", "expand": ["data.default_payment_method"]},
}
RETRIEVE_PATHS = {**LIST_PATHS, "payment_methods": "/v1/payment_methods"}
# Pass 1's declines: the account's unpaid invoice payments with their PaymentIntent (see `Declines`).
OPEN_PAYMENTS: Obj = {"status": "open", "expand": ["data.payment.payment_intent"]}


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
    born, names = _shared.get(key, (0.0, None))
    if names is None or time.monotonic() - born > ttl:
        names = ProductNames(settings)
        _shared[key] = (time.monotonic(), names)
    return names


def expanded_cards(resource: str, objs: Iterable[Obj]) -> list[Obj]:
    """The payment methods a pass-1 page carries expanded (customers' and subscriptions' default cards), once
    each: written with the page, so the pages show every default card before pass 2 lists the others."""
    found: dict[str, Obj] = {}
    for obj in objs:
        pm = (mapping.dig(obj, "invoice_settings", "default_payment_method") if resource == "customers"
              else obj.get("default_payment_method") if resource == "subscriptions" else None)
        if isinstance(pm, dict) and isinstance(pm.get("id"), str) and pm.get("object") == "payment_method":
            found[pm["id"]] = pm
    return list(found.values())


class Declines:
    """The last decline of every attempted unpaid invoice, from the account's open invoice payments.

    An invoice's decline lives on the PaymentIntent of its last payment, 5 expand levels below an invoice
    list (Stripe allows 4). Rather than one retrieve per such invoice, the account's invoice payments that are
    still open (`GET /v1/invoice_payments?status=open`, the PaymentIntent expanded: 3 levels) are listed once
    per run (100 a page) in a thread of its own, keeping the intents that carry a `last_payment_error`. Only
    unpaid invoices have open payments, so this costs pages in proportion to the unpaid invoices, not to every
    payment the account ever took (listing all PaymentIntents was ~3,800 pages for 400,000 invoices). Both
    lists run newest first, side by side: an invoice waits only until the listing has passed its payment's
    creation time. A payment created after the listing began is read on its own (one retrieve).
    """

    def __init__(self, settings: Settings | None = None, check: Callable[[], None] | None = None) -> None:
        self._settings = settings
        self._check = check or (lambda: None)
        self._cond = threading.Condition()
        self._errors: dict[str, Obj] = {}
        self._listed_from: int | None = None  # Stripe's clock when the listing began
        self._covered: int | None = None  # every intent created after this was seen (None: none yet)
        self._done = False
        self._failed: BaseException | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Begin the listing (once); `intent` starts it too."""
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(target=self._list, name="sync-declines", daemon=True)
                self._thread.start()

    def _list(self) -> None:
        try:
            for page in gw.iter_pages("/v1/invoice_payments", OPEN_PAYMENTS, settings=self._settings):
                self._check()
                with self._cond:
                    if self._listed_from is None:
                        self._listed_from = page.server_time
                    for payment in page.data:
                        pi = mapping.dig(payment, "payment", "payment_intent")
                        if isinstance(pi, dict) and isinstance(pi.get("last_payment_error"), dict):
                            self._errors[pi["id"]] = {"id": pi["id"], "last_payment_error": pi["last_payment_error"]}
                    if page.data:
                        self._covered = int(page.data[-1].get("created") or 0)
                    self._cond.notify_all()
        except BaseException as exc:  # noqa: BLE001 — handed to the invoices that wait for it
            with self._cond:
                self._failed = exc
        finally:
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def intent(self, pi_id: str, created: int) -> Obj | None:
        """The intent as far as the invoice needs it ({id, last_payment_error}), or None when the listing
        cannot say (created after the listing began: the caller retrieves it)."""
        self.start()
        with self._cond:
            while not (self._done or pi_id in self._errors
                       or (self._covered is not None and self._covered < created)):
                self._cond.wait(0.5)
                self._check()
            if self._failed is not None:
                raise self._failed
            if pi_id in self._errors:
                return self._errors[pi_id]
            if self._listed_from is not None and created and created < self._listed_from - 1:
                return {"id": pi_id, "last_payment_error": None}
            return None


def complete(resource: str, obj: Obj, settings: Settings | None = None, declines: Declines | None = None) -> None:
    """Fetch the rest of nested lists cut at 10 (subscription items, invoice lines) and an attempted unpaid
    invoice's last decline (from `declines` when given, else one retrieve)."""
    if resource == "subscriptions":
        gw.complete_nested(obj, "items", "/v1/subscription_items", {"subscription": obj["id"]}, settings=settings)
    elif resource == "invoices" and obj.get("id"):
        gw.complete_nested(obj, "lines", f"/v1/invoices/{obj['id']}/lines", settings=settings)
        _attach_last_payment_error(obj, settings, declines)


def _attach_last_payment_error(invoice: Obj, settings: Settings | None, declines: Declines | None = None) -> None:
    """Put the decline of the last attempt where mapping reads it.

    In the current API an invoice's failure lives on the PaymentIntent of its last invoice payment, 5 expand
    levels below a list (Stripe allows 4): read from `Declines` during a backfill, else one call — made only
    for unpaid invoices that were attempted, the only ones whose failure the cache shows.
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
        found = declines.intent(pi, int(last.get("created") or 0)) if declines is not None else None
        if found is None:
            found = gw.retrieve(f"/v1/payment_intents/{pi}", settings=settings)[0]
        last["payment"] = {**last["payment"], "payment_intent": found}
