"""`python -m sandbox.seed --messy` plants every messy case, read back through the official SDK (and, as for
every sandbox test, each answer is shape-checked against the SDK's classes)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import stripe

from sandbox import messy, seed
from tests.utils.sandbox import SandboxServer

N = 10


def _seed(server: SandboxServer) -> None:
    code = seed.main(["--api-base", server.url, "--api-key", server.key, "--customers", str(N), "--reset",
                      "--webhook-url", "none", "--messy"])
    assert code == 0


def _by_case(client: stripe.StripeClient) -> dict[str, stripe.Customer]:
    found = client.v1.customers.list({"limit": 100}).auto_paging_iter()
    return {c.metadata["messy_case"]: c for c in found if "messy_case" in c.metadata}


@pytest.fixture(scope="module")
def seeded() -> Iterator[SandboxServer]:
    """One sandbox seeded once for the read-only tests of this module."""
    server = SandboxServer.start()
    try:
        _seed(server)
        yield server
    finally:
        server.stop()


@pytest.fixture
def planted(seeded: SandboxServer) -> dict[str, stripe.Customer]:
    return _by_case(seeded.client)


def _subs(client: stripe.StripeClient, cid: str) -> list[stripe.Subscription]:
    return list(client.v1.subscriptions.list({"customer": cid, "status": "all", "limit": 100}).auto_paging_iter())


def _invoices(client: stripe.StripeClient, cid: str) -> list[stripe.Invoice]:
    return list(client.v1.invoices.list({"customer": cid, "limit": 100}).auto_paging_iter())


def test_every_live_case_is_planted(planted: dict[str, stripe.Customer]) -> None:
    live = {c.key for c in messy.cases() if not c.delete}
    assert set(planted) == live


def test_customers_without_currency_email_or_name(seeded: SandboxServer,
                                                  planted: dict[str, stripe.Customer]) -> None:
    assert planted["no_currency"].currency is None
    assert _subs(seeded.client, planted["no_currency"].id) == []
    assert planted["no_email_jpy"].email is None
    assert planted["no_name_krw"].name is None
    blank = planted["blank"]
    assert (blank.name, blank.email, blank.phone, blank.currency) == (None, None, None, None)


@pytest.mark.parametrize(("case", "currency", "amount"), [
    ("no_email_jpy", "jpy", 1200), ("no_name_krw", "krw", 15000), ("markdown_kwd", "kwd", 3500),
    ("html_bhd", "bhd", 12345),
])
def test_zero_and_three_decimal_currencies_have_subscriptions_and_invoices(
        seeded: SandboxServer, planted: dict[str, stripe.Customer], case: str, currency: str, amount: int) -> None:
    cid = planted[case].id
    assert [s.currency for s in _subs(seeded.client, cid)] == [currency]
    assert [(i.currency, i.amount_paid) for i in _invoices(seeded.client, cid)] == [(currency, amount)]


def test_text_payloads_reach_names_descriptions_phones_addresses_and_metadata(
        planted: dict[str, stripe.Customer]) -> None:
    names = {c.name for c in planted.values()}
    for payload in (messy.MD_IMAGE, messy.MD_LINK, messy.MD_BOLD, messy.MD_COLOR, messy.MD_MATH, messy.HTML_IMG):
        assert any(payload in (n or "") for n in names), payload
    for formula in messy.FORMULAS:
        assert any((n or "").startswith(formula) or formula in (n or "") for n in names), formula
    assert messy.RTL in names
    assert messy.EMOJI in names
    assert planted["html_bhd"].description == messy.HTML_SCRIPT
    assert planted["formula_failed"].phone == "+1+1"
    assert planted["markdown_kwd"].phone == "@SUM(A1)"
    assert planted["no_currency"].address.line1.startswith(messy.MD_LINK)
    assert planted["no_currency"].metadata["note"] == f"{messy.MD_IMAGE} Ann"
    assert planted["no_currency"].metadata["formula"] == messy.FORMULA_LINK


def test_long_name_and_description(planted: dict[str, stripe.Customer]) -> None:
    assert len(planted["long_name"].name) == 256
    assert len(planted["long_name"].description) == 300


def test_a_customer_with_sixty_subscriptions(seeded: SandboxServer, planted: dict[str, stripe.Customer]) -> None:
    assert len(_subs(seeded.client, planted["many_subscriptions"].id)) == 60


def test_an_invoice_with_150_lines(seeded: SandboxServer, planted: dict[str, stripe.Customer]) -> None:
    (inv,) = _invoices(seeded.client, planted["many_lines"].id)
    lines = list(seeded.client.v1.invoices.line_items.list(inv.id, {"limit": 100}).auto_paging_iter())
    assert len(lines) == 150
    assert inv.status == "paid"
    assert inv.amount_paid == sum(line.amount for line in lines)
    assert lines[0].description == f"{messy.MD_IMAGE} #1"  # in invoice order


def test_a_deleted_customer_whose_invoices_remain(seeded: SandboxServer) -> None:
    invoices = [i for i in seeded.client.v1.invoices.list({"limit": 100}).auto_paging_iter()
                if i.customer_name == f"Deleted {messy.MD_IMAGE}"]
    assert len(invoices) == 1
    customer = seeded.client.v1.customers.retrieve(invoices[0].customer)
    assert customer.to_dict().get("deleted") is True


def test_a_failed_invoice_for_a_messy_customer(seeded: SandboxServer, planted: dict[str, stripe.Customer]) -> None:
    (inv,) = _invoices(seeded.client, planted["formula_failed"].id)
    assert (inv.status, inv.attempt_count) == ("open", 1)
    assert inv.customer_email == "=1+1@example.com"


def test_the_messy_twin_shares_the_email_in_another_case(planted: dict[str, stripe.Customer]) -> None:
    a, b = planted["markdown_kwd"], planted["markdown_twin"]
    assert a.email != b.email
    assert a.email.casefold() == b.email.casefold()


def test_messy_seed_is_deterministic(sandbox: SandboxServer, tmp_path: Path) -> None:
    """Seeded twice (each answer shape-checked), the messy customers say the same things."""
    def content() -> list[tuple]:
        return sorted((k, c.name, c.email, c.phone, c.description, c.currency, sorted(c.metadata.to_dict().items()))
                      for k, c in _by_case(sandbox.client).items())

    _seed(sandbox)
    first = content()
    _seed(sandbox)
    assert content() == first


@pytest.mark.parametrize(("case", "price"), [("no_email_jpy", "¥1,200"), ("no_name_krw", "KRW 15,000"),
                                             ("markdown_kwd", "KWD 3.500"), ("html_bhd", "BHD 12.345")])
def test_line_descriptions_write_prices_in_the_currencys_decimals(
        seeded: SandboxServer, planted: dict[str, stripe.Customer], case: str, price: str) -> None:
    (inv,) = _invoices(seeded.client, planted[case].id)
    assert [line.description for line in inv.lines.data] == [f"1 × {messy.PRODUCT_NAME} (at {price} / month)"]
