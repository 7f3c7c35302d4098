"""The messy part of the demo account (`python -m sandbox.seed --messy`): data Stripe accepts and a dashboard
must survive.

Planted through the API at the end of the seeded year, in a fixed order with fixed content (only the ids
come from the sandbox), one customer per case; each carries `metadata.messy_case` so tests can find it:
- customers with no currency (no subscription), no email, no name, and one with none of these;
- zero-decimal (JPY, KRW) and three-decimal (KWD, BHD) subscriptions and their invoices;
- Markdown, HTML, spreadsheet formulas, RTL marks and emoji in names, descriptions, phones, addresses and
  metadata; a name of Stripe's maximum length (256) and a 300-character description;
- a customer with 60 subscriptions, a one-off invoice with 150 lines, a deleted customer whose invoices
  remain, a failed invoice of a messy customer, and two records of one messy person (the Duplicates page).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Write = Callable[[str, str, dict[str, Any] | None], dict[str, Any]]

# The payloads, verbatim: tests look for them in what the dashboard renders.
MD_IMAGE = "![x](http://host/track.png)"
MD_LINK = "[Verify your session](http://host/phish)"
MD_BOLD = "**bold**"
MD_COLOR = ":red[x]"
MD_MATH = "$x$"
HTML_IMG = "<img src=x onerror=alert(1)>"
HTML_SCRIPT = "<script>alert(1)</script>"
FORMULA_LINK = '=HYPERLINK("http://host/x","Click")'
FORMULAS = (FORMULA_LINK, "+1+1", "-2+3", "@SUM(A1)", "\tTab", "\rReturn")
RTL = "\u202eevil\u202c مريم\u200f"
EMOJI = "🦄 Unicorn 👩‍👩‍👧 Ltd"
MARKDOWN_PAYLOADS = (MD_IMAGE, MD_LINK, MD_BOLD, MD_COLOR, MD_MATH)
ALL_PAYLOADS = (*MARKDOWN_PAYLOADS, HTML_IMG, HTML_SCRIPT, *FORMULAS, RTL, EMOJI)
STRIPE_NAME_MAX = 256  # Stripe refuses a longer customer name
LONG_NAME = ("Dr. " + "Maximiliana Wolfeschlegelsteinhausenbergerdorff " * 6)[:STRIPE_NAME_MAX]
LONG_DESCRIPTION = ("A description that goes on and on " * 10)[:300]

GOOD_CARD = "4242424242424242"
DECLINING_CARD = "4000000000000341"  # attaches, then every charge is declined (card_declined)
# Monthly prices of the messy plan, in minor units: 15.00 USD, ¥1,200, ₩15,000, 3.500 KWD, 12.345 BHD.
PRICES = {"usd": 1500, "jpy": 1200, "krw": 15000, "kwd": 3500, "bhd": 12345}
PRODUCT_NAME = f"Messy {MD_BOLD} plan {MD_COLOR}"
MANY_SUBSCRIPTIONS = 60
MANY_LINES = 150

METADATA = {"note": f"{MD_IMAGE} Ann", "link": MD_LINK, "formula": FORMULA_LINK, "html": HTML_SCRIPT,
            "rtl": RTL}
ADDRESS = {"line1": f"{MD_LINK} 1", "line2": HTML_IMG, "city": f"{MD_BOLD} City", "state": MD_COLOR,
           "postal_code": "=1+1", "country": "US"}


@dataclass(frozen=True)
class Case:
    """One messy customer: what Stripe is sent for it, and what it buys."""

    key: str
    customer: dict[str, Any]
    currency: str | None = None  # of its subscription(s); None: no subscription
    subscriptions: int = 0
    card: str | None = GOOD_CARD
    one_off_lines: int = 0  # a one-off invoice with this many lines (in USD)
    delete: bool = False


def cases() -> list[Case]:
    """Every messy case, in the order it is planted."""
    return [
        Case("no_currency", {"name": f"{MD_IMAGE} Ann", "email": "ann.track@example.com",
                             "description": MD_LINK, "phone": "+1 415 555 0100"}, card=None),
        Case("blank", {}, card=None),
        Case("no_email_jpy", {"name": MD_LINK, "description": f"{MD_IMAGE} {MD_MATH}"}, "jpy", 1),
        Case("no_name_krw", {"email": "-2+3@example.com", "phone": "-2+3"}, "krw", 1),
        Case("markdown_kwd", {"name": f"{MD_BOLD} Kuwait {MD_COLOR} {MD_MATH}", "email": "bold.kuwait@example.com",
                              "description": f"{MD_COLOR} and {MD_MATH}", "phone": "@SUM(A1)"}, "kwd", 1),
        Case("markdown_twin", {"name": f"{MD_BOLD} Kuwait {MD_COLOR} {MD_MATH}",
                               "email": "BOLD.Kuwait@example.com"}, card=None),
        Case("html_bhd", {"name": f"{HTML_IMG} Eve", "email": "eve.html@example.com", "description": HTML_SCRIPT,
                          "phone": "<b>555</b>"}, "bhd", 1),
        Case("formula_failed", {"name": FORMULA_LINK, "email": "=1+1@example.com", "phone": "+1+1",
                                "description": "=cmd|' /C calc'!A0"}, "usd", 1, card=DECLINING_CARD),
        Case("formula_plus", {"name": "+1+1", "email": "+11@example.com", "phone": "=1+1"}, card=None),
        Case("formula_minus", {"name": "-2+3", "email": "minus@example.com"}, card=None),
        Case("formula_at", {"name": "@SUM(A1)", "email": "at.sum@example.com"}, card=None),
        Case("formula_tab_cr", {"name": "\tTab \rReturn", "email": "tab.return@example.com",
                                "description": "\rReturn"}, card=None),
        Case("rtl", {"name": RTL, "email": "rtl@example.com", "description": "\u200fRTL mark"}, "usd", 1),
        Case("emoji", {"name": EMOJI, "email": "unicorn@example.com", "description": "🚀🔥"}, "usd", 1),
        Case("long_name", {"name": LONG_NAME, "email": "long.name@example.com", "description": LONG_DESCRIPTION},
             "usd", 1),
        Case("many_subscriptions", {"name": f"Many {MD_BOLD} Subs", "email": "many.subs@example.com"}, "usd",
             MANY_SUBSCRIPTIONS),
        Case("many_lines", {"name": f"Lines {MD_LINK}", "email": "many.lines@example.com"},
             one_off_lines=MANY_LINES),
        Case("deleted", {"name": f"Deleted {MD_IMAGE}", "email": "deleted@example.com"}, "usd", 1, delete=True),
    ]


@dataclass
class Planted:
    """What the messy seed made: customer ids by case, and the notable invoices."""

    customers: dict[str, str] = field(default_factory=dict)
    failed_invoice: str = ""
    many_lines_invoice: str = ""
    deleted_invoices: list[str] = field(default_factory=list)
    requests: int = 0


def _prices(write: Write) -> dict[str, str]:
    product = write("post", "/v1/products", {"name": PRODUCT_NAME, "description": f"{MD_LINK} {HTML_IMG}",
                                            "metadata": {"plan": "messy"}})
    return {cur: write("post", "/v1/prices", {
        "product": product["id"], "currency": cur, "unit_amount": amount, "recurring": {"interval": "month"},
        "nickname": f"{MD_BOLD} monthly ({cur.upper()})", "lookup_key": f"messy_monthly_{cur}"})["id"]
        for cur, amount in PRICES.items()}


def _customer(write: Write, case: Case, exp_year: int) -> str:
    params: dict[str, Any] = dict(case.customer)
    params["metadata"] = {"messy_case": case.key, **METADATA}
    if case.key != "blank":
        params["address"] = ADDRESS
    else:
        params["metadata"] = {"messy_case": case.key}
    if case.card:
        pm = write("post", "/v1/payment_methods", {
            "type": "card", "card": {"number": case.card, "exp_month": 12, "exp_year": exp_year, "cvc": "314"},
            "billing_details": {"name": FORMULA_LINK}})
        params["payment_method"] = pm["id"]
        params["invoice_settings"] = {"default_payment_method": pm["id"]}
    return write("post", "/v1/customers", params)["id"]


def _one_off(write: Write, cid: str, lines: int) -> str:
    """A draft invoice with `lines` invoice items (descriptions cycle through the payloads), finalized and paid."""
    inv = write("post", "/v1/invoices", {"customer": cid, "currency": "usd", "description": MD_LINK,
                                         "metadata": {"note": MD_IMAGE}})
    for i in range(lines):
        payload = ALL_PAYLOADS[i % len(ALL_PAYLOADS)]
        write("post", "/v1/invoiceitems", {"customer": cid, "invoice": inv["id"], "amount": 100 + i,
                                           "currency": "usd", "description": f"{payload} #{i + 1}"})
    write("post", f"/v1/invoices/{inv['id']}/finalize", {})
    write("post", f"/v1/invoices/{inv['id']}/pay", {})
    return inv["id"]


def plant(write: Write, *, exp_year: int) -> Planted:
    """Create every messy case through `write(method, path, params)` (the seed's raw SDK requests)."""
    out = Planted()
    counted: Write = _counting(write, out)
    prices = _prices(counted)
    for case in cases():
        cid = out.customers[case.key] = _customer(counted, case, exp_year)
        for n in range(case.subscriptions if case.currency else 0):
            sub = counted("post", "/v1/subscriptions", {
                "customer": cid, "items": [{"price": prices[case.currency or "usd"], "quantity": 1 + n % 3}],
                "description": f"{MD_LINK} #{n + 1}", "metadata": {"note": MD_IMAGE, "formula": FORMULA_LINK}})
            if case.card == DECLINING_CARD:
                out.failed_invoice = sub["latest_invoice"]
            if case.delete:
                out.deleted_invoices.append(sub["latest_invoice"])
        if case.one_off_lines:
            out.many_lines_invoice = _one_off(counted, cid, case.one_off_lines)
        if case.delete:
            counted("delete", f"/v1/customers/{cid}", None)
    return out


def _counting(write: Write, out: Planted) -> Write:
    def call(method: str, path: str, params: dict[str, Any] | None) -> dict[str, Any]:
        out.requests += 1
        return write(method, path, params)

    return call
