"""One customer's refresh (`refresh_customer`), after portal and merge actions."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, update

from lib import gateway as gw
from lib.config import Settings, get_settings
from lib.db import ensure_migrated, retry_transaction
from lib.ids import IdKind
from lib.sync.fetch import complete, shared_products
from lib.sync.sql import TABLES, Obj, _touch_state
from lib.sync.writer import apply_objects


def refresh_customer(customer_id: str, *, settings: Settings | None = None) -> None:
    """Re-fetch one customer with its subscriptions, invoices and payment methods into the cache.

    Used after portal and merge actions. Raises GatewayError when Stripe cannot be read. Only the write is
    rerun when PostgreSQL picks it as a deadlock victim: the Stripe reads are not repeated.
    """
    gw.checked_id(IdKind.CUSTOMER, customer_id)  # before any request: an id like cus_x/../cus_Y reads no one
    settings = settings or get_settings()
    engine = ensure_migrated(settings.database_url)
    newest = gw.list_page("/v1/events", {"limit": 1}, settings=settings).data
    customer, server_time = gw.retrieve(f"/v1/customers/{customer_id}", settings=settings)
    server_time = max(server_time, int(newest[0]["created"]) if newest else 0)  # see _Run.stripe_time
    def listed(path: str, params: dict[str, Any]) -> list[Obj]:
        try:
            return list(gw.iter_list(path, params, settings=settings))
        except gw.NotFound:
            if customer.get("deleted"):  # a deleted customer's lists may be gone
                return []
            raise

    subs = listed("/v1/subscriptions", {"customer": customer_id, "status": "all"})
    for s in subs:
        complete("subscriptions", s, settings)
    invoices = listed("/v1/invoices", {"customer": customer_id})
    for inv in invoices:
        complete("invoices", inv, settings)
    pms: list[Obj] = []
    if not customer.get("deleted"):
        pms = list(gw.iter_list(f"/v1/customers/{customer_id}/payment_methods", settings=settings))
    # the product names webhooks use (listed once per 10 minutes), not a product list per refresh
    names = shared_products(settings).resolve(subs) if subs else None
    _write_customer(engine, customer_id, server_time, customer, subs, invoices, pms, names)


@retry_transaction()
def _write_customer(engine: Engine, customer_id: str, server_time: int, customer: Obj, subs: list[Obj],
                    invoices: list[Obj], pms: list[Obj], names: dict[str, str] | None) -> None:
    """refresh_customer's one transaction: the customer, its lists, and its cards no longer attached."""
    pm_table = TABLES["payment_methods"]
    with engine.begin() as conn:
        _touch_state(conn, "customers")
        apply_objects(conn, "customers", [(customer, server_time)])
        apply_objects(conn, "subscriptions", [(s, server_time) for s in subs], names)
        apply_objects(conn, "invoices", [(i, server_time) for i in invoices])
        apply_objects(conn, "payment_methods", [(p, server_time) for p in pms])
        conn.execute(update(pm_table).where(   # cards the cache still puts on this customer are detached now
            pm_table.c.customer_id == customer_id, pm_table.c.id.not_in([p["id"] for p in pms]),
            pm_table.c.version_ts <= server_time).values(customer_id=None, version_ts=server_time))
