"""The API shape of stored objects: the constant fields left out of stored dicts (`DEFAULTS`, `compact`) and a
stored object or event as Stripe answers it (`render`, `render_event`, `event_json`): internal `_` keys
hidden, nested lists cut to Stripe's first 10 entries.

Below sandbox.core (whose event log snapshots objects with `render`): imports no sandbox module at run time.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sandbox.core import Obj, Store

NESTED_LIST_LIMIT = 10

# Fields that never vary for objects made in bulk (one set per invoice). They are left out of the stored
# dicts (`compact`) and filled back in when answering, which roughly halves the memory a seeded year takes.
# Code never reads these keys from stored objects.
_NONE = None
DEFAULTS: dict[str, Obj] = {
    "invoice": {
        "account_country": "US", "account_name": "Sandbox Inc.", "account_tax_ids": _NONE, "amount_overpaid": 0,
        "amount_shipping": 0, "application": _NONE,
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None, "provider": None,
                          "status": None},
        "automatically_finalizes_at": _NONE, "confirmation_secret": _NONE, "custom_fields": _NONE,
        "customer_tax_ids": [], "default_source": _NONE, "default_tax_rates": [], "discounts": [],
        "from_invoice": _NONE, "issuer": {"type": "self"}, "last_finalization_error": _NONE,
        "latest_revision": _NONE, "livemode": False, "on_behalf_of": _NONE,
        "payment_settings": {"default_mandate": None, "payment_method_options": None, "payment_method_types": None},
        "post_payment_credit_notes_amount": 0, "pre_payment_credit_notes_amount": 0, "receipt_number": _NONE,
        "rendering": _NONE, "shipping_cost": _NONE, "shipping_details": _NONE, "statement_descriptor": _NONE,
        "test_clock": _NONE, "threshold_reason": _NONE, "total_discount_amounts": [],
        "total_pretax_credit_amounts": [], "total_taxes": []},
    "payment_intent": {
        "amount_capturable": 0, "amount_details": {"tip": {}}, "application": _NONE,
        "application_fee_amount": _NONE, "automatic_payment_methods": _NONE, "canceled_at": _NONE,
        "cancellation_reason": _NONE, "capture_method": "automatic", "confirmation_method": "automatic",
        "livemode": False, "metadata": {}, "next_action": _NONE, "on_behalf_of": _NONE,
        "payment_method_configuration_details": _NONE, "payment_method_options": {},
        "payment_method_types": ["card"], "processing": _NONE, "receipt_email": _NONE, "review": _NONE,
        "setup_future_usage": _NONE, "shipping": _NONE, "source": _NONE, "statement_descriptor": _NONE,
        "statement_descriptor_suffix": _NONE, "transfer_data": _NONE, "transfer_group": _NONE},
    "charge": {
        "amount_refunded": 0, "application": _NONE, "application_fee": _NONE, "application_fee_amount": _NONE,
        "balance_transaction": _NONE, "calculated_statement_descriptor": "SANDBOX", "description": _NONE,
        "disputed": False, "failure_balance_transaction": _NONE, "fraud_details": {}, "livemode": False,
        "metadata": {}, "on_behalf_of": _NONE, "payment_method_details": _NONE, "receipt_email": _NONE,
        "receipt_number": _NONE, "receipt_url": _NONE, "refunded": False, "review": _NONE, "shipping": _NONE,
        "source": _NONE, "source_transfer": _NONE, "statement_descriptor": _NONE,
        "statement_descriptor_suffix": _NONE, "transfer_data": _NONE, "transfer_group": _NONE},
    "line_item": {"discount_amounts": [], "discountable": True, "discounts": [], "livemode": False, "metadata": {},
                  "pretax_credit_amounts": [], "taxes": []},
    "invoice_payment": {"is_default": True, "livemode": False},
}


_DEFAULT_KEYS = {kind: frozenset(d) for kind, d in DEFAULTS.items()}


def compact(obj: Obj) -> Obj:
    """A copy of a freshly built object without this kind's constant fields (see DEFAULTS); answers add them
    back. Builders write every field for readability; at creation those fields always hold the default. A new
    dict (rather than deleting keys) so the table is sized for what is kept."""
    drop = _DEFAULT_KEYS.get(obj["object"], frozenset())
    return {k: v for k, v in obj.items() if k not in drop}


def _full(obj: Obj) -> Obj:
    defaults = DEFAULTS.get(obj.get("object"))  # type: ignore[arg-type]
    return {**defaults, **obj} if defaults else obj


def render(store: Store, obj: Obj) -> Obj:
    if obj.get("_deleted"):
        return {"id": obj["id"], "object": obj["object"], "deleted": True}
    kind = obj["object"]
    if kind == "event":
        return render_event(obj)
    out = {k: v for k, v in obj.items() if k[0] != "_"}
    defaults = DEFAULTS.get(kind)
    if defaults:
        out = {**defaults, **out}
    for key in obj.get("_lists", ()):
        lst = out[key]
        if lst is None:
            continue
        data = lst["data"]
        if len(data) > NESTED_LIST_LIMIT:
            out[key] = dict(lst, data=[_full(x) for x in data[:NESTED_LIST_LIMIT]], has_more=True)
        elif data and data[0].get("object") in DEFAULTS:
            out[key] = dict(lst, data=[_full(x) for x in data])
    return out


def render_event(event: Obj) -> Obj:
    out = {k: v for k, v in event.items() if k[0] != "_"}
    data: Obj = {"object": json.loads(event["_snap"])}
    if event.get("_prev"):
        data["previous_attributes"] = json.loads(event["_prev"])
    out["data"] = data
    return out


def event_json(event: Obj) -> str:
    """An event's JSON built around its stored snapshot text (no decode and re-encode)."""
    head = json.dumps({k: v for k, v in event.items() if k[0] != "_" and k != "data"}, separators=(",", ":"),
                      ensure_ascii=False)
    prev = event.get("_prev")
    data = '{"object":' + event["_snap"] + (',"previous_attributes":' + prev if prev else "") + "}"
    return head[:-1] + ',"data":' + data + "}"
