"""One-off invoices: `POST /v1/invoices` (a draft for a customer) and `POST /v1/invoiceitems` added to it.

Only what the messy demo data needs (an invoice with more lines than a subscription can have items): an
invoice item must name its draft `invoice` (Stripe also keeps pending items for the customer's next
invoice; the sandbox refuses that with a 400 saying so). Amounts are `amount` or `unit_amount_decimal` ×
`quantity`, in the invoice's currency. The draft is then finalized and paid with the existing endpoints.
"""

from __future__ import annotations

from sandbox.billing import build_invoice
from sandbox.core import Obj, Store, as_int, invalid, metadata_update, new_id
from sandbox.resources import cur
from sandbox.routes import route
from sandbox.shape import compact

INVOICE_CREATE = {"customer", "currency", "description", "metadata", "auto_advance", "collection_method",
                  "days_until_due", "pending_invoice_items_behavior", "footer"}
ITEM_CREATE = {"customer", "invoice", "amount", "currency", "description", "metadata", "quantity",
               "unit_amount_decimal", "period", "discountable"}
MAX_LINES = 250  # Stripe's limit on the lines of one invoice


@route("POST", "/v1/invoices", INVOICE_CREATE)
def invoice_create(store: Store, params: Obj) -> Obj:
    """A draft one-off invoice (`billing_reason=manual`), in the customer's currency unless one is given."""
    cid = params.get("customer")
    if not cid:
        raise invalid("Missing required param: customer.", param="customer", code="parameter_missing")
    c = store.get(cid, "customer", param="customer")
    behavior = params.get("pending_invoice_items_behavior", "exclude")
    if behavior not in ("exclude", "include"):
        raise invalid("Invalid pending_invoice_items_behavior.", param="pending_invoice_items_behavior")
    currency = cur(params["currency"]) if params.get("currency") else (c["currency"] or "usd")
    if c["currency"] and currency != c["currency"]:
        raise invalid(f"You cannot combine currencies on a single customer. This customer has had a subscription "
                      f"or payment in {c['currency']}, but you are trying to pay in {currency}.", param="currency")
    collection = params.get("collection_method", "charge_automatically")
    if collection not in ("charge_automatically", "send_invoice"):
        raise invalid("Invalid collection_method.", param="collection_method")
    now = store.now()
    saved = c["currency"]
    c["currency"] = currency  # build_invoice takes a one-off invoice's currency from the customer
    try:
        inv = build_invoice(store, c, None, "manual", now, now, [])
    finally:
        c["currency"] = saved
    inv["collection_method"] = collection
    inv["description"] = params.get("description") or None
    inv["footer"] = params.get("footer") or None
    inv["metadata"] = metadata_update({}, params.get("metadata"))
    if "auto_advance" in params:
        inv["auto_advance"] = str(params["auto_advance"]).lower() == "true"
    return inv


@route("POST", "/v1/invoiceitems", ITEM_CREATE)
def invoice_item_create(store: Store, params: Obj) -> Obj:
    """An invoice item on a draft invoice of the same customer; the invoice gets a matching line."""
    cid = params.get("customer")
    if not cid:
        raise invalid("Missing required param: customer.", param="customer", code="parameter_missing")
    c = store.get(cid, "customer", param="customer")
    if not params.get("invoice"):
        raise invalid("The sandbox only adds invoice items to a draft invoice: pass invoice=in_… (pending items "
                      "for the customer's next invoice are not supported).", param="invoice")
    inv = store.get(params["invoice"], "invoice", param="invoice")
    if inv["customer"] != cid:
        raise invalid("The invoice belongs to another customer.", param="invoice")
    if inv["status"] != "draft":
        raise invalid("You can only add invoice items to draft invoices.", param="invoice",
                      code="invoice_not_editable")
    if len(inv["lines"]["data"]) >= MAX_LINES:
        raise invalid(f"An invoice can have at most {MAX_LINES} line items.", param="invoice")
    currency = cur(params["currency"]) if params.get("currency") else inv["currency"]
    if currency != inv["currency"]:
        raise invalid(f"The currency {currency} does not match the invoice's currency {inv['currency']}.",
                      param="currency")
    quantity = as_int(params, "quantity", default=1, minimum=0)
    if "amount" in params:
        amount = as_int(params, "amount")
        unit = amount // quantity if quantity else amount
    elif "unit_amount_decimal" in params:
        unit = as_int({"u": str(params["unit_amount_decimal"]).split(".")[0]}, "u")
        amount = unit * quantity
    else:
        raise invalid("Missing required param: amount.", param="amount", code="parameter_missing")
    now = store.now()
    period = params.get("period") if isinstance(params.get("period"), dict) else {}
    start = as_int(period, "start", default=now) if period else now
    end = as_int(period, "end", default=start) if period else now
    description = params.get("description") or None
    item: Obj = {
        "id": new_id("ii"), "object": "invoiceitem", "amount": amount, "currency": currency, "customer": cid,
        "customer_account": None, "date": now, "description": description,
        "discountable": str(params.get("discountable", "true")).lower() == "true", "discounts": [],
        "invoice": inv["id"], "livemode": False, "metadata": metadata_update({}, params.get("metadata")),
        "net_amount": amount, "parent": None, "period": {"end": end, "start": start}, "pricing": None,
        "proration": False, "proration_details": {"credited_items": None, "discount_amounts": []},
        "quantity": quantity,
        "quantity_decimal": str(quantity), "tax_rates": [], "test_clock": None,
    }
    store.put(item)
    line: Obj = {
        "id": new_id("il"), "object": "line_item", "amount": amount, "currency": currency,
        "description": description, "discount_amounts": [], "discountable": item["discountable"], "discounts": [],
        "invoice": inv["id"], "livemode": False, "metadata": dict(item["metadata"]),
        "parent": {"invoice_item_details": {"invoice_item": item["id"], "proration": False,
                                            "proration_details": {"credited_items": None}, "subscription": None},
                   "subscription_item_details": None, "type": "invoice_item_details"},
        "period": {"end": end, "start": start}, "pretax_credit_amounts": [], "pricing": None,
        "quantity": quantity, "subtotal": amount, "taxes": [],
    }
    line = compact(line)
    store.objs[line["id"]] = line
    inv["lines"]["data"].append(line)
    inv["lines"]["total_count"] = len(inv["lines"]["data"])
    for key in ("amount_due", "amount_remaining", "subtotal", "subtotal_excluding_tax", "total",
                "total_excluding_tax"):
        inv[key] += amount
    c["currency"] = c["currency"] or currency  # as on Stripe: the first invoice item sets it
    store.emit("invoiceitem.created", item)
    return item
