"""Customers, payment methods, products, prices, tax ids, balance transactions, events."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from sandbox.core import (
    ApiError,
    Obj,
    Store,
    as_bool,
    as_int,
    copy_fields,
    created_filter,
    diff,
    invalid,
    list_page,
    metadata_update,
    missing,
    new_id,
    snapshot,
)
from sandbox.lifecycle import cancel_subscription
from sandbox.routes import route

ADDRESS_KEYS = ("city", "country", "line1", "line2", "postal_code", "state")


def address(raw: Any, param: str) -> Obj | None:
    if raw is None or raw == "":
        return None
    if not isinstance(raw, dict):
        raise invalid("Invalid address: must be a hash.", param=param)
    unknown = set(raw) - set(ADDRESS_KEYS)
    if unknown:
        raise invalid(f"Received unknown parameter: {param}[{sorted(unknown)[0]}]", param=param)
    return {k: (raw.get(k) or None) for k in ADDRESS_KEYS}


def cur(value: Any, param: str = "currency") -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z]{3}", value):
        raise invalid(f"Invalid currency: {value}. Stripe currently supports these currencies: usd, eur, gbp, …",
                      param=param)
    return value.lower()


# --- customers ----------------------------------------------------------------------------------

CUSTOMER_FIELDS = {"name", "email", "phone", "description", "address", "metadata", "preferred_locales",
                   "invoice_settings", "payment_method", "balance", "shipping", "tax_exempt", "tax_id_data",
                   "invoice_prefix", "test_clock", "source", "tax", "next_invoice_sequence"}


def _index_email(store: Store, cid: str, old: str | None, new: str | None) -> None:
    if old:
        lst = store.email_index.get(old)
        if lst and cid in lst:
            lst.remove(cid)
    if new:
        store.email_index.setdefault(new, []).append(cid)


@route("POST", "/v1/customers", CUSTOMER_FIELDS)
def customer_create(store: Store, params: Obj) -> Obj:
    now = store.now()
    cid = new_id("cus")
    c: Obj = {
        "id": cid, "object": "customer", "address": None, "balance": 0, "created": now, "currency": None,
        "default_source": None, "delinquent": False, "description": None, "discount": None, "email": None,
        "invoice_prefix": hashlib.sha1(cid.encode()).hexdigest()[:8].upper(),
        "invoice_settings": {"custom_fields": None, "default_payment_method": None, "footer": None,
                             "rendering_options": None},
        "livemode": False, "metadata": {}, "name": None, "next_invoice_sequence": 1, "phone": None,
        "preferred_locales": [], "shipping": None, "tax_exempt": "none", "test_clock": None,
    }
    _apply_customer(store, c, params, creating=True)
    # validate everything before anything is stored, so a failed create leaves nothing behind
    pm_param = params.get("payment_method")
    dpm = (params.get("invoice_settings") or {}).get("default_payment_method") \
        if isinstance(params.get("invoice_settings"), dict) else None
    if dpm and dpm != pm_param:
        raise invalid(f"The customer does not have a payment method with the ID {dpm}. The payment method must be "
                      "attached to the customer.", param="invoice_settings[default_payment_method]",
                      code="resource_missing")
    tax_ids = params.get("tax_id_data") or []
    for i, tid in enumerate(tax_ids):
        if not isinstance(tid, dict) or not isinstance(tid.get("type"), str) or tid["type"] not in TAX_ID_TYPES \
                or not isinstance(tid.get("value"), str) or not tid["value"]:
            raise invalid("Invalid tax id: type and value are required and type must be supported.",
                          param=f"tax_id_data[{i}]")
    pm = None
    if pm_param:
        pm = resolve_pm(store, pm_param, "payment_method")
        check_attachable(pm, "payment_method")
    store.put(c)
    _index_email(store, cid, None, c["email"])
    if pm is not None:
        attach(store, pm["id"], cid, param="payment_method")
        if dpm:  # e.g. payment_method=pm_card_visa with the same test id as the default
            c["invoice_settings"]["default_payment_method"] = pm["id"]
    store.emit("customer.created", c)
    for i, tid in enumerate(tax_ids):
        _tax_id_create(store, c, tid, f"tax_id_data[{i}]")
    return c


def _apply_customer(store: Store, c: Obj, params: Obj, creating: bool = False) -> None:
    if params.get("email") and len(params["email"]) > 512:
        raise invalid("Invalid email address", param="email")
    copy_fields(c, params, ("name", "email", "phone", "description"))
    if "address" in params:
        c["address"] = address(params["address"], "address")
    if "shipping" in params:
        s = params["shipping"]
        if s in (None, ""):
            c["shipping"] = None
        else:
            if not isinstance(s, dict) or "name" not in s:
                raise invalid("Missing required param: shipping[name].", param="shipping[name]")
            c["shipping"] = {"address": address(s.get("address"), "shipping[address]"),
                             "name": s["name"], "phone": s.get("phone") or None}
    if "metadata" in params:
        c["metadata"] = metadata_update(c["metadata"], params["metadata"])
    if "preferred_locales" in params:
        locs = params["preferred_locales"]
        c["preferred_locales"] = [] if locs in ("", None) else list(locs)
    if "balance" in params:
        c["balance"] = as_int(params, "balance")
    if "tax_exempt" in params:
        if params["tax_exempt"] not in ("none", "exempt", "reverse"):
            raise invalid(f"Invalid tax_exempt: {params['tax_exempt']}", param="tax_exempt")
        c["tax_exempt"] = params["tax_exempt"]
    if "invoice_prefix" in params:
        if not re.fullmatch(r"[A-Z0-9]{3,12}", params["invoice_prefix"] or ""):
            raise invalid("Invalid invoice_prefix.", param="invoice_prefix")
        c["invoice_prefix"] = params["invoice_prefix"]
    if "next_invoice_sequence" in params:
        c["next_invoice_sequence"] = as_int(params, "next_invoice_sequence", minimum=1)


def _resolve_attached(store: Store, pm_id: Any, cid: str, param: str) -> str | None:
    if pm_id in ("", None):
        return None
    pm = store.objs.get(pm_id)
    if pm is None or pm.get("object") != "payment_method":
        raise missing("PaymentMethod", pm_id, param)
    if pm["customer"] != cid:
        raise invalid(f"The customer does not have a payment method with the ID {pm_id}. The payment method must "
                      "be attached to the customer.", param=param, code="resource_missing")
    return pm_id


@route("GET", "/v1/customers/{cid}", set())
def customer_retrieve(store: Store, params: Obj, cid: str) -> Obj:
    c = store.objs.get(cid)
    if c is None or c["object"] != "customer":
        raise missing("customer", cid)
    return c


@route("POST", "/v1/customers/{cid}", CUSTOMER_FIELDS)
def customer_update(store: Store, params: Obj, cid: str) -> Obj:
    c = store.get(cid, "customer")
    before = snapshot(c, c.keys())
    old_email = c["email"]
    _apply_customer(store, c, params)
    if "invoice_settings" in params:
        s = params["invoice_settings"]
        if not isinstance(s, dict):
            raise invalid("Invalid invoice_settings", param="invoice_settings")
        if "default_payment_method" in s:
            dpm = _resolve_attached(store, s["default_payment_method"], cid,
                                    "invoice_settings[default_payment_method]")
            c["invoice_settings"] = dict(c["invoice_settings"], default_payment_method=dpm)
        if "footer" in s:
            c["invoice_settings"] = dict(c["invoice_settings"], footer=s["footer"] or None)
    if c["email"] != old_email:
        _index_email(store, cid, old_email, c["email"])
    prev = diff(c, before)
    if prev:
        store.emit("customer.updated", c, prev)
    return c


@route("DELETE", "/v1/customers/{cid}", set())
def customer_delete(store: Store, params: Obj, cid: str) -> Obj:
    c = store.get(cid, "customer")
    for sid in list(store.children("subscription", cid)):
        sub = store.objs[sid]
        if sub["status"] not in ("canceled", "incomplete_expired"):
            cancel_subscription(store, sub, reason="cancellation_requested")
    for pmid in store.children("payment_method", cid):
        pm = store.objs[pmid]
        if pm["customer"] == cid:
            pm["customer"] = None
            pm["_detached"] = True
    store.emit("customer.deleted", c)
    c["_deleted"] = True
    _index_email(store, cid, c["email"], None)
    return {"id": cid, "object": "customer", "deleted": True}


@route("GET", "/v1/customers", {"limit", "starting_after", "ending_before", "email", "created", "test_clock"})
def customer_list(store: Store, params: Obj) -> Obj:
    created = created_filter(params)
    if "email" in params:
        ids = store.email_index.get(params["email"], [])
        return list_page(store, ids, params, "/v1/customers", created=created)
    idx = store.index.get("customer")
    if idx is None:
        return {"object": "list", "data": [], "has_more": False, "url": "/v1/customers"}
    return list_page(store, idx.ids, params, "/v1/customers", pos=idx.pos, created=created)


# --- customer search ------------------------------------------------------------------------------

_TOKEN = re.compile(r"""\s*(?:(?P<op>AND|OR)\b|(?P<neg>-)?(?P<field>metadata\[(?:'[^']*'|"[^"]*")\]|\w+)
                        \s*(?P<cmp>:|~|>=|<=|>|<)\s*(?P<val>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[\w.@+-]+))""", re.X)
SEARCH_FIELDS = {"email", "name", "phone", "created", "metadata", "id"}


def parse_query(query: str) -> tuple[str, list[tuple[bool, str, str | None, str, str]]]:
    clauses: list[tuple[bool, str, str | None, str, str]] = []
    joiner = "AND"
    pos = 0
    query = query.strip()
    if not query:
        raise invalid("Search query is empty.", param="query")
    expect_clause = True
    while pos < len(query):
        m = _TOKEN.match(query, pos)
        if not m or m.end() == pos:
            raise invalid(f"We could not parse your search query: {query!r}. Try using the syntax "
                          "field:'value' joined by AND or OR.", param="query")
        pos = m.end()
        if m.group("op"):
            if expect_clause:
                raise invalid(f"We could not parse your search query: {query!r}.", param="query")
            if clauses and len(clauses) > 1 and m.group("op") != joiner:
                raise invalid("Search queries cannot mix AND and OR.", param="query")
            joiner = m.group("op")
            expect_clause = True
            continue
        if not expect_clause:
            raise invalid(f"We could not parse your search query: {query!r}. Join clauses with AND or OR.",
                          param="query")
        field = m.group("field")
        key = None
        if field.startswith("metadata["):
            key = field[10:-2]
            field = "metadata"
        if field not in SEARCH_FIELDS:
            raise invalid(f"Field '{field}' is an unsupported search field for customers.", param="query")
        val = m.group("val")
        if val[0] in "'\"":
            val = val[1:-1].replace("\\'", "'").replace('\\"', '"')
        cmp = m.group("cmp")
        if cmp == "~" and len(val) < 3:
            raise invalid("Substring search (~) needs at least 3 characters.", param="query")
        clauses.append((bool(m.group("neg")), field, key, cmp, val))
        expect_clause = False
    if expect_clause:
        raise invalid(f"We could not parse your search query: {query!r}.", param="query")
    return joiner, clauses


def _clause_ok(c: Obj, clause: tuple[bool, str, str | None, str, str]) -> bool:
    neg, field, key, cmp, val = clause
    if field == "created":
        try:
            num = int(val)
        except ValueError:
            raise invalid("created must be compared with a number.", param="query") from None
        have = c["created"]
        res = {":": have == num, ">": have > num, "<": have < num, ">=": have >= num, "<=": have <= num}.get(cmp)
        if res is None:
            raise invalid("Unsupported comparison for created.", param="query")
        return res != neg
    have = c["metadata"].get(key) if field == "metadata" else c.get(field)
    if cmp in (">", "<", ">=", "<="):
        raise invalid(f"Field '{field}' does not support {cmp}.", param="query")
    if val == "null" and cmp == ":":
        return (have is None) != neg
    if have is None:
        return neg
    have_l, val_l = str(have).lower(), val.lower()
    res = have_l == val_l if cmp == ":" else val_l in have_l
    return res != neg


@route("GET", "/v1/customers/search", {"query", "limit", "page"})
def customer_search(store: Store, params: Obj) -> Obj:
    joiner, clauses = parse_query(params.get("query") or "")
    limit = as_int(params, "limit", default=10, minimum=1, maximum=100)
    page = params.get("page")
    start = 0
    if page:
        try:
            start = int(str(page).removeprefix("page_"))
        except ValueError:
            raise invalid("Invalid page token.", param="page") from None
    combine = all if joiner == "AND" else any
    idx = store.index.get("customer")
    ids = idx.ids if idx else []
    found: list[Obj] = []
    skipped = 0
    has_more = False
    for i in range(len(ids) - 1, -1, -1):
        c = store.objs.get(ids[i])
        if c is None or c.get("_deleted"):
            continue
        if not combine(_clause_ok(c, cl) for cl in clauses):
            continue
        if skipped < start:
            skipped += 1
            continue
        if len(found) == limit:
            has_more = True
            break
        found.append(c)
    return {"object": "search_result", "data": found, "has_more": has_more,
            "next_page": f"page_{start + limit}" if has_more else None, "url": "/v1/customers/search"}


# --- customer balance transactions ------------------------------------------------------------------

def balance_txn(store: Store, c: Obj, amount: int, currency: str, *, type_: str = "adjustment",
                description: str | None = None, invoice: str | None = None, metadata: Obj | None = None) -> Obj:
    before = {"balance": c["balance"]}
    if c["currency"] is None:
        c["currency"] = currency
    c["balance"] += amount
    t = {"id": new_id("cbtxn"), "object": "customer_balance_transaction", "amount": amount,
         "checkout_session": None, "created": store.now(), "credit_note": None, "currency": currency,
         "customer": c["id"], "description": description, "ending_balance": c["balance"],
         "invoice": invoice, "livemode": False, "metadata": metadata or {}, "type": type_}
    store.put(t)
    store.child("customer_balance_transaction", c["id"], t["id"])
    store.emit("customer.updated", c, before)
    return t


@route("POST", "/v1/customers/{cid}/balance_transactions", {"amount", "currency", "description", "metadata"})
def balance_txn_create(store: Store, params: Obj, cid: str) -> Obj:
    c = store.get(cid, "customer")
    amount = as_int(params, "amount")
    if amount is None:
        raise invalid("Missing required param: amount.", param="amount", code="parameter_missing")
    if "currency" not in params:
        raise invalid("Missing required param: currency.", param="currency", code="parameter_missing")
    currency = cur(params["currency"])
    if c["currency"] and c["currency"] != currency:
        raise invalid(f"The currency {currency} does not match the customer's currency {c['currency']}.",
                      param="currency")
    return balance_txn(store, c, amount, currency, description=params.get("description") or None,
                       metadata=metadata_update({}, params.get("metadata")))


@route("GET", "/v1/customers/{cid}/balance_transactions", {"limit", "starting_after", "ending_before",
                                                             "created", "invoice"})
def balance_txn_list(store: Store, params: Obj, cid: str) -> Obj:
    store.get(cid, "customer")
    match = (lambda t: t["invoice"] == params["invoice"]) if params.get("invoice") else None
    return list_page(store, store.children("customer_balance_transaction", cid), params,
                     f"/v1/customers/{cid}/balance_transactions", created=created_filter(params), match=match)


def owned(store: Store, oid: str, kind: str, label: str, cid: str) -> Obj:
    """An object that must belong to customer `cid` (another customer's answers 404, as on Stripe)."""
    obj = store.get(oid, kind, label)
    if obj["customer"] != cid:
        raise missing(label, oid)
    return obj


@route("GET", "/v1/customers/{cid}/balance_transactions/{tid}", set())
def balance_txn_retrieve(store: Store, params: Obj, cid: str, tid: str) -> Obj:
    return owned(store, tid, "customer_balance_transaction", "customer balance transaction", cid)


# --- tax ids --------------------------------------------------------------------------------------

TAX_ID_TYPES = {"eu_vat": None, "gb_vat": "GB", "us_ein": "US", "au_abn": "AU", "ca_bn": "CA", "ch_vat": "CH",
                "no_vat": "NO", "in_gst": "IN", "jp_cn": "JP", "br_cnpj": "BR", "mx_rfc": "MX",
                "nz_gst": "NZ", "sg_uen": "SG", "za_vat": "ZA", "ae_trn": "AE", "es_cif": "ES"}


def _tax_id_create(store: Store, c: Obj, raw: Any, param: str) -> Obj:
    if not isinstance(raw, dict) or not raw.get("type") or not raw.get("value"):
        raise invalid("Missing required param: type and value.", param=param, code="parameter_missing")
    if not isinstance(raw["type"], str) or not isinstance(raw["value"], str):
        raise invalid("Invalid string: type and value must be strings.", param=param or "type")
    kind, value = raw["type"], raw["value"]
    if kind not in TAX_ID_TYPES:
        raise invalid(f"Invalid value for type: {kind}. Supported: {', '.join(sorted(TAX_ID_TYPES))}.",
                      param=f"{param}[type]" if param != "" else "type")
    country = TAX_ID_TYPES[kind] or value[:2].upper()
    if kind == "eu_vat" and not re.fullmatch(r"[A-Z]{2}[0-9A-Z]{8,12}", value.replace(" ", "")):
        raise invalid(f"Invalid value for eu_vat: {value}", param="value", code="tax_id_invalid")
    t = {"id": new_id("txi"), "object": "tax_id", "country": country, "created": store.now(),
         "customer": c["id"], "livemode": False,
         "owner": {"account": None, "application": None, "customer": c["id"], "type": "customer"},
         "type": kind, "value": value,
         "verification": {"status": "pending" if kind in ("eu_vat", "gb_vat", "au_abn") else "unavailable",
                          "verified_address": None, "verified_name": None}}
    store.put(t)
    store.child("tax_id", c["id"], t["id"])
    store.emit("customer.tax_id.created", t)
    return t


@route("POST", "/v1/customers/{cid}/tax_ids", {"type", "value"})
def tax_id_create(store: Store, params: Obj, cid: str) -> Obj:
    c = store.get(cid, "customer")
    if len([t for t in store.children("tax_id", cid) if not store.objs[t].get("_deleted")]) >= 25:
        raise invalid("A customer can have at most 25 tax ids.")
    return _tax_id_create(store, c, params, "")


@route("GET", "/v1/customers/{cid}/tax_ids", {"limit", "starting_after", "ending_before"})
def tax_id_list(store: Store, params: Obj, cid: str) -> Obj:
    store.get(cid, "customer")
    return list_page(store, store.children("tax_id", cid), params, f"/v1/customers/{cid}/tax_ids")


@route("GET", "/v1/customers/{cid}/tax_ids/{tid}", set())
def tax_id_retrieve(store: Store, params: Obj, cid: str, tid: str) -> Obj:
    return owned(store, tid, "tax_id", "tax id", cid)


@route("DELETE", "/v1/customers/{cid}/tax_ids/{tid}", set())
def tax_id_delete(store: Store, params: Obj, cid: str, tid: str) -> Obj:
    t = tax_id_retrieve(store, params, cid, tid)
    store.emit("customer.tax_id.deleted", t)
    t["_deleted"] = True
    return {"id": tid, "object": "tax_id", "deleted": True}


# --- payment methods ----------------------------------------------------------------------------------

# number -> (behaviour at attach, decline at charge): decline = (code, decline_code, message)
DECLINES = {
    "4000000000000002": ("attach", ("card_declined", "generic_decline", "Your card was declined.")),
    "4000000000000341": ("charge", ("card_declined", "generic_decline", "Your card was declined.")),
    "4000000000009995": ("charge", ("card_declined", "insufficient_funds", "Your card has insufficient funds.")),
    "4000000000000069": ("charge", ("expired_card", "expired_card", "Your card has expired.")),
    "4000000000000127": ("charge", ("incorrect_cvc", "incorrect_cvc", "Your card's security code is incorrect.")),
}
PM_TOKENS = {
    "visa": "4242424242424242", "visa_debit": "4000056655665556", "mastercard": "5555555555554444",
    "amex": "378282246310005", "discover": "6011111111111117",
    "visa_chargeDeclined": "4000000000000002", "chargeDeclined": "4000000000000002",
    "chargeCustomerFail": "4000000000000341",
    "visa_chargeDeclinedInsufficientFunds": "4000000000009995",
    "chargeDeclinedInsufficientFunds": "4000000000009995",
    "visa_chargeDeclinedExpiredCard": "4000000000000069", "chargeDeclinedExpiredCard": "4000000000000069",
    "visa_chargeDeclinedIncorrectCvc": "4000000000000127", "chargeDeclinedIncorrectCvc": "4000000000000127",
}


def _brand(number: str) -> str:
    if number.startswith("4"):
        return "visa"
    if number[:2] in ("51", "52", "53", "54", "55") or number.startswith("2"):
        return "mastercard"
    if number[:2] in ("34", "37"):
        return "amex"
    if number.startswith("6"):
        return "discover"
    return "unknown"


def _luhn(number: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def make_card_pm(store: Store, number: str, exp_month: int, exp_year: int, billing: Obj | None = None,
                 metadata: Obj | None = None) -> Obj:
    brand = _brand(number)
    fingerprint = hashlib.sha256(("fp:" + number).encode()).hexdigest()[:16]
    bd = billing or {}
    pm = {
        "id": new_id("pm"), "object": "payment_method", "allow_redisplay": "unspecified",
        "billing_details": {"address": address(bd.get("address"), "billing_details[address]")
                            or {k: None for k in ADDRESS_KEYS},
                            "email": bd.get("email") or None, "name": bd.get("name") or None,
                            "phone": bd.get("phone") or None, "tax_id": None},
        "card": {"brand": brand, "checks": {"address_line1_check": None, "address_postal_code_check": None,
                                            "cvc_check": "unchecked"},
                 "country": "US", "display_brand": brand, "exp_month": exp_month, "exp_year": exp_year,
                 "fingerprint": fingerprint, "funding": "debit" if number == "4000056655665556" else "credit",
                 "generated_from": None, "last4": number[-4:],
                 "networks": {"available": [brand], "preferred": None}, "regulated_status": "unregulated",
                 "three_d_secure_usage": {"supported": True}, "wallet": None},
        "created": store.now(), "customer": None, "livemode": False, "metadata": metadata or {},
        "type": "card", "_number": number,
    }
    return store.put(pm)


@route("POST", "/v1/payment_methods", {"type", "card", "billing_details", "metadata", "allow_redisplay"})
def pm_create(store: Store, params: Obj) -> Obj:
    if params.get("type") != "card":
        raise invalid(f"Invalid type: {params.get('type')!r}; the sandbox supports type=card.", param="type")
    card = params.get("card")
    if not isinstance(card, dict):
        raise invalid("Missing required param: card.", param="card", code="parameter_missing")
    if "token" in card:
        tok = str(card["token"])
        number = PM_TOKENS.get(tok.removeprefix("tok_"))
        if number is None:
            raise missing("token", tok, "card[token]")
        exp_month, exp_year = 12, _year(store) + 3
    else:
        number = re.sub(r"[\s-]", "", str(card.get("number") or ""))
        if not number:
            raise invalid("Missing required param: card[number].", param="card[number]", code="parameter_missing")
        if not number.isdigit() or not 12 <= len(number) <= 19 or not _luhn(number):
            raise ApiError(402, "Your card number is incorrect.", type="card_error", code="incorrect_number",
                           param="card[number]")
        exp_month = as_int(card, "exp_month", default=None, minimum=1, maximum=12)
        exp_year = as_int(card, "exp_year", default=None)
        if exp_month is None:
            raise invalid("Missing required param: card[exp_month].", param="card[exp_month]",
                          code="parameter_missing")
        if exp_year is None:
            raise invalid("Missing required param: card[exp_year].", param="card[exp_year]",
                          code="parameter_missing")
        if exp_year < 100:
            exp_year += 2000
        if exp_year < _year(store):
            raise ApiError(402, "Your card's expiration year is invalid.", type="card_error",
                           code="invalid_expiry_year", param="card[exp_year]")
    return make_card_pm(store, number, exp_month, exp_year, params.get("billing_details"),
                        metadata_update({}, params.get("metadata")))


def _year(store: Store) -> int:
    import datetime as dt

    return dt.datetime.fromtimestamp(store.now(), dt.UTC).year


def resolve_pm(store: Store, pm_id: Any, param: str) -> Obj:
    """A stored PaymentMethod, or a fresh one for Stripe's `pm_card_*` test ids."""
    if isinstance(pm_id, str) and pm_id.startswith("pm_card_"):
        number = PM_TOKENS.get(pm_id[len("pm_card_"):])
        if number is None:
            raise missing("PaymentMethod", pm_id, param)
        return make_card_pm(store, number, 12, _year(store) + 3)
    pm = store.objs.get(pm_id) if isinstance(pm_id, str) else None
    if pm is None or pm["object"] != "payment_method":
        raise missing("PaymentMethod", pm_id, param)
    return pm


def attach(store: Store, pm_id: Any, cid: str, param: str = "id") -> Obj:
    pm = resolve_pm(store, pm_id, param)
    if pm["customer"] == cid:
        return pm
    check_attachable(pm, param)
    pm["customer"] = cid
    store.child("payment_method", cid, pm["id"])
    store.emit("payment_method.attached", pm)
    return pm


def check_attachable(pm: Obj, param: str) -> None:
    if pm["customer"] is not None:
        raise invalid("The payment method you provided has already been attached to a customer.", param=param,
                      code="payment_method_unexpected_state")
    if pm.get("_detached") or pm.get("_used"):
        raise invalid("This PaymentMethod was previously used without being attached to a Customer or was "
                      "detached from a Customer, and may not be used again.", param=param,
                      code="payment_method_unexpected_state")
    behaviour = DECLINES.get(pm["_number"])
    if behaviour and behaviour[0] == "attach":
        code, decline, msg = behaviour[1]
        raise ApiError(402, msg, type="card_error", code=code, decline_code=decline, param="",
                       extra={"payment_method": {"id": pm["id"], "object": "payment_method"}})


@route("POST", "/v1/payment_methods/{pmid}/attach", {"customer"})
def pm_attach(store: Store, params: Obj, pmid: str) -> Obj:
    cid = params.get("customer")
    if not cid:
        raise invalid("Missing required param: customer.", param="customer", code="parameter_missing")
    store.get(cid, "customer", param="customer")
    return attach(store, pmid, cid)


@route("POST", "/v1/payment_methods/{pmid}/detach", set())
def pm_detach(store: Store, params: Obj, pmid: str) -> Obj:
    pm = store.get(pmid, "payment_method", "PaymentMethod")
    cid = pm["customer"]
    if cid is None:
        raise invalid("The payment method you provided is not attached to a customer so detachment is "
                      "impossible.", code="payment_method_unexpected_state")
    before = {"customer": cid}
    pm["customer"] = None
    pm["_detached"] = True
    c = store.objs.get(cid)
    if c and c["invoice_settings"]["default_payment_method"] == pmid:
        cb = snapshot(c, ["invoice_settings"])
        c["invoice_settings"] = dict(c["invoice_settings"], default_payment_method=None)
        store.emit("customer.updated", c, cb)
    store.emit("payment_method.detached", pm, before)
    return pm


@route("GET", "/v1/payment_methods/{pmid}", set())
def pm_retrieve(store: Store, params: Obj, pmid: str) -> Obj:
    return store.get(pmid, "payment_method", "PaymentMethod")


@route("POST", "/v1/payment_methods/{pmid}", {"billing_details", "metadata", "card", "allow_redisplay"})
def pm_update(store: Store, params: Obj, pmid: str) -> Obj:
    pm = store.get(pmid, "payment_method", "PaymentMethod")
    before = snapshot(pm, ["metadata", "card", "billing_details"])
    if "metadata" in params:
        pm["metadata"] = metadata_update(pm["metadata"], params["metadata"])
    card = params.get("card")
    if isinstance(card, dict):
        nc = dict(pm["card"])
        if "exp_month" in card:
            nc["exp_month"] = as_int(card, "exp_month", minimum=1, maximum=12)
        if "exp_year" in card:
            nc["exp_year"] = as_int(card, "exp_year")
        pm["card"] = nc
    if isinstance(params.get("billing_details"), dict):
        bd = dict(pm["billing_details"])
        for k in ("email", "name", "phone"):
            if k in params["billing_details"]:
                bd[k] = params["billing_details"][k] or None
        pm["billing_details"] = bd
    prev = diff(pm, before)
    if prev:
        store.emit("payment_method.updated", pm, prev)
    return pm


def _pm_list(store: Store, params: Obj, cid: str, url: str) -> Obj:
    kind = params.get("type")
    if kind not in (None, "card"):
        return {"object": "list", "data": [], "has_more": False, "url": url}
    ids = store.children("payment_method", cid)
    return list_page(store, ids, params, url, match=lambda pm: pm["customer"] == cid)


@route("GET", "/v1/payment_methods", {"customer", "type", "limit", "starting_after", "ending_before"})
def pm_list(store: Store, params: Obj) -> Obj:
    cid = params.get("customer")
    if not cid:
        return {"object": "list", "data": [], "has_more": False, "url": "/v1/payment_methods"}
    store.get(cid, "customer", param="customer")
    return _pm_list(store, params, cid, "/v1/payment_methods")


@route("GET", "/v1/customers/{cid}/payment_methods", {"type", "limit", "starting_after", "ending_before",
                                                        "allow_redisplay"})
def customer_pm_list(store: Store, params: Obj, cid: str) -> Obj:
    store.get(cid, "customer")
    return _pm_list(store, params, cid, f"/v1/customers/{cid}/payment_methods")


@route("GET", "/v1/customers/{cid}/payment_methods/{pmid}", set())
def customer_pm_retrieve(store: Store, params: Obj, cid: str, pmid: str) -> Obj:
    return owned(store, pmid, "payment_method", "PaymentMethod", cid)


# --- products and prices -----------------------------------------------------------------------------

@route("POST", "/v1/products", {"name", "description", "metadata", "active", "id", "default_price_data",
                                "unit_label", "url", "images", "statement_descriptor", "tax_code"})
def product_create(store: Store, params: Obj) -> Obj:
    if not params.get("name"):
        raise invalid("Missing required param: name.", param="name", code="parameter_missing")
    pid = params.get("id") or new_id("prod")
    if pid in store.objs:
        raise invalid(f"Product already exists: {pid}", param="id", code="resource_already_exists")
    now = store.now()
    prod = {"id": pid, "object": "product", "active": as_bool(params, "active", True), "created": now,
            "default_price": None, "description": params.get("description") or None,
            "images": params.get("images") or [],
            "livemode": False, "marketing_features": [], "metadata": metadata_update({}, params.get("metadata")),
            "name": params["name"], "package_dimensions": None, "shippable": None,
            "statement_descriptor": params.get("statement_descriptor"), "tax_code": params.get("tax_code"),
            "type": "service", "unit_label": params.get("unit_label"), "updated": now, "url": params.get("url")}
    store.put(prod)
    store.emit("product.created", prod)
    if isinstance(params.get("default_price_data"), dict):
        price = _price_create(store, dict(params["default_price_data"], product=pid))
        prod["default_price"] = price["id"]
    return prod


@route("GET", "/v1/products/{pid}", set())
def product_retrieve(store: Store, params: Obj, pid: str) -> Obj:
    return store.get(pid, "product")


@route("POST", "/v1/products/{pid}", {"name", "description", "metadata", "active", "default_price"})
def product_update(store: Store, params: Obj, pid: str) -> Obj:
    prod = store.get(pid, "product")
    before = snapshot(prod, prod.keys())
    copy_fields(prod, params, ("name", "description"))
    if "active" in params:
        prod["active"] = as_bool(params, "active")
    if "metadata" in params:
        prod["metadata"] = metadata_update(prod["metadata"], params["metadata"])
    if "default_price" in params:
        price = store.get(params["default_price"], "price", param="default_price")
        prod["default_price"] = price["id"]
    prod["updated"] = store.now()
    store.emit("product.updated", prod, diff(prod, before))
    return prod


@route("GET", "/v1/products", {"limit", "starting_after", "ending_before", "active", "created", "ids"})
def product_list(store: Store, params: Obj) -> Obj:
    idx = store.index.get("product")
    active = as_bool(params, "active")
    match = (lambda o: o["active"] == active) if active is not None else None
    if idx is None:
        return {"object": "list", "data": [], "has_more": False, "url": "/v1/products"}
    return list_page(store, idx.ids, params, "/v1/products", pos=idx.pos, match=match, created=created_filter(params))


PRICE_FIELDS = {"currency", "unit_amount", "unit_amount_decimal", "recurring", "product", "product_data",
                "nickname", "metadata", "lookup_key", "active", "tax_behavior", "billing_scheme"}


def _price_create(store: Store, params: Obj) -> Obj:
    if "currency" not in params:
        raise invalid("Missing required param: currency.", param="currency", code="parameter_missing")
    currency = cur(params["currency"])
    unit = as_int(params, "unit_amount", minimum=0)
    if unit is None:
        raise invalid("Missing required param: unit_amount.", param="unit_amount", code="parameter_missing")
    if params.get("product"):
        prod = store.get(params["product"], "product", param="product")
    elif isinstance(params.get("product_data"), dict) and params["product_data"].get("name"):
        prod = product_create(store, {"name": params["product_data"]["name"],
                                      "metadata": params["product_data"].get("metadata")})
    else:
        raise invalid("Missing required param: product.", param="product", code="parameter_missing")
    recurring = None
    if params.get("recurring"):
        r = params["recurring"]
        if not isinstance(r, dict) or r.get("interval") not in ("day", "week", "month", "year"):
            raise invalid("Invalid recurring[interval]: must be one of day, week, month, or year",
                          param="recurring[interval]")
        count = as_int(r, "interval_count", default=1, minimum=1)
        limits = {"day": 365, "week": 52, "month": 12, "year": 3}
        if count > limits[r["interval"]]:
            raise invalid("The maximum billing interval is three years.", param="recurring[interval_count]")
        recurring = {"interval": r["interval"], "interval_count": count, "meter": None,
                     "trial_period_days": as_int(r, "trial_period_days"),
                     "usage_type": r.get("usage_type", "licensed")}
    price = {"id": new_id("price"), "object": "price", "active": as_bool(params, "active", True),
             "billing_scheme": "per_unit", "created": store.now(), "currency": currency,
             "custom_unit_amount": None, "livemode": False, "lookup_key": params.get("lookup_key"),
             "metadata": metadata_update({}, params.get("metadata")), "nickname": params.get("nickname"),
             "product": prod["id"], "recurring": recurring, "tax_behavior": params.get("tax_behavior", "unspecified"),
             "tiers_mode": None, "transform_quantity": None,
             "type": "recurring" if recurring else "one_time", "unit_amount": unit,
             "unit_amount_decimal": str(unit)}
    store.put(price)
    store.child("price", prod["id"], price["id"])
    store.emit("price.created", price)
    return price


@route("POST", "/v1/prices", PRICE_FIELDS)
def price_create(store: Store, params: Obj) -> Obj:
    return _price_create(store, params)


@route("GET", "/v1/prices/{pid}", set())
def price_retrieve(store: Store, params: Obj, pid: str) -> Obj:
    return store.get(pid, "price")


@route("POST", "/v1/prices/{pid}", {"active", "metadata", "nickname", "lookup_key"})
def price_update(store: Store, params: Obj, pid: str) -> Obj:
    price = store.get(pid, "price")
    before = snapshot(price, price.keys())
    if "active" in params:
        price["active"] = as_bool(params, "active")
    if "metadata" in params:
        price["metadata"] = metadata_update(price["metadata"], params["metadata"])
    copy_fields(price, params, ("nickname", "lookup_key"))
    store.emit("price.updated", price, diff(price, before))
    return price


@route("GET", "/v1/prices", {"limit", "starting_after", "ending_before", "active", "currency", "product",
                              "type", "created", "recurring", "lookup_keys"})
def price_list(store: Store, params: Obj) -> Obj:
    active = as_bool(params, "active")
    conds = []
    if active is not None:
        conds.append(lambda o: o["active"] == active)
    if params.get("currency"):
        conds.append(lambda o: o["currency"] == params["currency"].lower())
    if params.get("type"):
        conds.append(lambda o: o["type"] == params["type"])
    if params.get("lookup_keys"):
        keys = set(params["lookup_keys"])
        conds.append(lambda o: o["lookup_key"] in keys)
    match = (lambda o: all(c(o) for c in conds)) if conds else None
    if params.get("product"):
        return list_page(store, store.children("price", params["product"]), params, "/v1/prices", match=match,
                         created=created_filter(params))
    idx = store.index.get("price")
    if idx is None:
        return {"object": "list", "data": [], "has_more": False, "url": "/v1/prices"}
    return list_page(store, idx.ids, params, "/v1/prices", pos=idx.pos, match=match, created=created_filter(params))


# --- events -----------------------------------------------------------------------------------------

def type_matcher(patterns: list[str]) -> Any:
    exact = {t for t in patterns if not t.endswith("*")}
    prefixes = tuple(t[:-1] for t in patterns if t.endswith("*"))
    return lambda t: t in exact or (bool(prefixes) and t.startswith(prefixes))


@route("GET", "/v1/events", {"limit", "starting_after", "ending_before", "type", "types", "created",
                              "delivery_success"})
def event_list(store: Store, params: Obj) -> Obj:
    store.prune_events()
    idx = store.index.get("event")
    if idx is None:
        return {"object": "list", "data": [], "has_more": False, "url": "/v1/events"}
    if params.get("type") and params.get("types"):
        raise invalid("You may only specify one of these parameters: type, types.", param="types")
    patterns = [params["type"]] if params.get("type") else list(params.get("types") or [])
    cursors = [c for c in (params.get("starting_after"), params.get("ending_before")) if c]
    if len(patterns) == 1 and not patterns[0].endswith("*"):
        by_type = store.event_types.get(patterns[0])
        if by_type is None:
            return {"object": "list", "data": [], "has_more": False, "url": "/v1/events"}
        if all(c in by_type.pos for c in cursors):  # one exact type: walk only that type's events
            return list_page(store, by_type.ids, params, "/v1/events", start=by_type.start, pos=by_type.pos,
                             created=created_filter(params))
    match = None
    if patterns:
        fits = type_matcher(patterns)
        match = lambda e: fits(e["type"])  # noqa: E731
    return list_page(store, idx.ids, params, "/v1/events", start=idx.start, pos=idx.pos, match=match,
                     created=created_filter(params))


@route("GET", "/v1/events/{eid}", set())
def event_retrieve(store: Store, params: Obj, eid: str) -> Obj:
    return store.get(eid, "event")
