"""Customer-controlled text (names, emails, phones, metadata, decline codes, URL parameters) is shown as
text on every page: never a live link, an image, a Streamlit directive or LaTeX in a Markdown element.

"Verbatim" checks look at the Markdown source of every element that renders Markdown (titles, markdown,
captions, alerts, metrics, button and expander labels…); tables, code blocks and select-box options are
plain text in the browser and are left out.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session
from streamlit.testing.v1 import AppTest

from app_pages.components.tables import customer_link, dashboard_url
from app_pages.components.text import md, md_id, plain, safe_id, safe_url
from lib.config import get_settings
from tests.duplicates.factory import add_customer
from tests.utils.apptest import PAGES_DIR, run_page
from tests.utils.factories import make_customer, make_failed_invoice
from tests.utils.login import as_role, write_roles

PIXEL = "![x](http://host/track.png) Ann"
PHISH = "[Verify your session](http://host/phish)"
PHONE = "[Call us now](http://host/phone)"
LOGIN = "[Session expired - log in again](http://host/login)"
DIRECTIVE = ":red[URGENT] :material/warning: $x^2$"
PAYLOADS = (PIXEL, PHISH, PHONE, LOGIN, DIRECTIVE)
PLAIN_TEXT_TYPES = {"dataframe", "arrow_data_frame", "code", "selectbox", "multiselect", "text_input", "text_area"}


def markdown_sources(at: AppTest) -> list[str]:
    """The protos of every rendered element whose text the browser renders as Markdown."""
    out: list[str] = []

    def walk(node: Any) -> None:
        proto = getattr(node, "proto", None)
        if proto is not None and getattr(node, "type", None) not in PLAIN_TEXT_TYPES:
            out.append(str(proto))
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return out


def verbatim(at: AppTest) -> list[str]:
    """The payloads that appear unescaped in some Markdown element."""
    sources = markdown_sources(at)
    return [p for p in PAYLOADS if any(p in s for s in sources)]


def test_hostile_profile_is_text_on_customer_detail(session: Session) -> None:
    c = make_customer(session, name=PIXEL, email="ann@example.com", phone=PHONE)
    at = run_page("customer_detail.py", query={"id": c.id})
    assert not at.exception, at.exception
    assert verbatim(at) == []


def test_hostile_name_reads_literally_in_the_title(session: Session) -> None:
    c = make_customer(session, name=PIXEL, email="ann@example.com")
    at = run_page("customer_detail.py", query={"id": c.id})
    assert plain(at.title[0].value) == PIXEL


def test_hostile_email_is_text_on_customer_detail(session: Session) -> None:
    c = make_customer(session, name=None, email=PHISH)
    at = run_page("customer_detail.py", query={"id": c.id})
    assert not at.exception, at.exception
    assert verbatim(at) == []


def test_id_from_the_url_is_text_in_the_error_box(db: Any) -> None:
    at = run_page("customer_detail.py", query={"id": LOGIN})
    assert not at.exception, at.exception
    assert verbatim(at) == []


def test_id_from_the_url_still_reads_in_the_message(db: Any) -> None:
    at = run_page("customer_detail.py", query={"id": LOGIN})
    assert any(LOGIN in plain(e.value) and "not a customer id" in e.value for e in at.error)


def test_a_very_long_id_from_the_url_is_shortened_in_the_message(db: Any) -> None:
    at = run_page("customer_detail.py", query={"id": "x" * 5000})
    (message,) = [plain(e.value) for e in at.error]
    assert len(message) < 400


def test_directives_in_a_name_are_text(session: Session) -> None:
    c = make_customer(session, name=DIRECTIVE, email="d@example.com")
    at = run_page("customer_detail.py", query={"id": c.id})
    assert verbatim(at) == []


def test_open_link_label_on_customers_is_text(session: Session) -> None:
    make_customer(session, name=PHISH, email=None)
    at = run_page("customers.py")
    assert not at.exception, at.exception
    assert verbatim(at) == []


def test_hostile_decline_code_is_text_in_the_explanation(session: Session) -> None:
    c = make_customer(session, email="pay@example.com")
    make_failed_invoice(session, c, decline_code=PHISH)
    at = run_page("failed_invoices.py")
    at.selectbox(key="fi_decline").select(PHISH).run()
    assert not at.exception, at.exception
    assert verbatim(at) == []


@pytest.fixture
def admin_roles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROLES_FILE", str(write_roles(tmp_path / "roles.toml")))
    get_settings.cache_clear()


def test_duplicates_page_shows_names_and_metadata_as_text(admin_roles: None, session: Session) -> None:
    add_customer(session, id="cus_dupa", email="same@corp.test", name=PHISH,
                 metadata={"merged_into": LOGIN})
    add_customer(session, id="cus_dupb", email="same@corp.test", name=PIXEL, phone=PHONE)
    at = as_role(AppTest.from_file(str(PAGES_DIR / "duplicates.py"), default_timeout=30), "admin").run()
    assert not at.exception, at.exception
    assert verbatim(at) == []


# --- the links the dashboard makes itself ------------------------------------------------------------


@pytest.mark.parametrize("value", ["cus_NffrFeUfNV2Hib", "cus_T00000001"])
def test_customer_ids_make_links(value: str) -> None:
    assert customer_link(value) == f"customer?id={value}"


@pytest.mark.parametrize("value", [LOGIN, "cus_x](http://host)", "in_123", "", None, float("nan"),
                                   "cus_a b", "javascript:alert(1)"])
def test_anything_else_makes_no_customer_link(value: object) -> None:
    assert customer_link(value) is None


def test_stripe_links_only_for_ids_of_their_kind(db: Any, real_stripe_base: None) -> None:
    assert dashboard_url("invoices", "in_1Abc").endswith("/invoices/in_1Abc")  # type: ignore[union-attr]


@pytest.mark.parametrize("kind,value", [("invoices", "cus_1Abc"), ("customers", PHISH),
                                        ("events", "evt_1 ) [x](http://h)"), ("payment_methods", None)])
def test_no_stripe_link_for_other_ids(db: Any, real_stripe_base: None, kind: str,
                                      value: object) -> None:
    assert dashboard_url(kind, value) is None


@pytest.mark.parametrize("value", ["javascript:alert(1)", "data:text/html,x", " http://a b", None])
def test_only_http_urls_are_links(value: object) -> None:
    assert safe_url(value) is None


def test_md_round_trips_through_plain() -> None:
    text = "\\ ` * _ { } [ ] ( ) # + - . ! | < > ~ : $ & @ " + PIXEL
    assert plain(md(text)) == text


def test_md_leaves_no_markdown_character_unescaped() -> None:
    escaped = md(PHISH)
    assert all(escaped[i - 1] == "\\" for i, ch in enumerate(escaped) if ch in "[]():/.")


def test_safe_id_accepts_its_kind() -> None:
    assert safe_id("subscription", "sub_1") == "sub_1"


def test_safe_id_refuses_another_kind() -> None:
    assert safe_id("subscription", "cus_1") is None


def test_md_id_escapes_what_is_not_an_id() -> None:
    assert md_id(LOGIN) == md(LOGIN)


def test_md_id_keeps_an_id_readable_for_assistive_technology() -> None:
    assert md_id("cus_F3BokW0VE353b2") == "cus_F3BokW0VE353b2"


# --- GFM's autolinker: it links web addresses in text even when every character is backslash-escaped ---------

# What GitHub-flavoured Markdown (Streamlit's renderer) turns into a live link after escapes are resolved: an
# http(s):// or www. address with a dotted domain (found in the browser: "Call www.evil.com/login now" as a
# customer name rendered a link to http://www.evil.com/login in the page title).
_GFM_AUTOLINK = re.compile(r"(https?://|www\.)[-\w]+\.[-\w]+", re.IGNORECASE)
WEB_NAME = "Call www.evil.com/login now"
WEB_PHONE = "HTTPS://evil.com/pay"


def autolinked(at: AppTest) -> list[str]:
    """The planted web addresses (evil.com) GFM would link in some Markdown element (escapes resolved, as the
    renderer does); the dashboard's own links (Open in Stripe) are not the customer's text."""
    texts = [e.value for kind in (at.title, at.header, at.subheader, at.markdown, at.caption) for e in kind]
    found = [m.group(0) for t in texts for m in _GFM_AUTOLINK.finditer(t.replace("\\", ""))]
    return [url for url in found if "evil" in url.lower()]


def test_web_address_in_a_name_is_no_link_on_customer_detail(session: Session) -> None:
    c = make_customer(session, name=WEB_NAME, email="web@example.com", phone=WEB_PHONE)
    at = run_page("customer_detail.py", query={"id": c.id})
    assert autolinked(at) == []


def test_web_address_in_a_name_still_reads_in_the_title(session: Session) -> None:
    c = make_customer(session, name=WEB_NAME, email="web@example.com")
    at = run_page("customer_detail.py", query={"id": c.id})
    assert plain(at.title[0].value) == WEB_NAME


@pytest.mark.parametrize("value", ["http://evil.com/x", "see https://evil.com", "WWW.EVIL.COM", "www.a.b/c"])
def test_md_breaks_gfm_autolinks(value: str) -> None:
    assert _GFM_AUTOLINK.search(md(value).replace("\\", "")) is None


def test_md_with_a_web_address_round_trips_through_plain() -> None:
    assert plain(md(WEB_NAME)) == WEB_NAME


def test_md_email_starting_with_www_is_not_linked_from_its_tail() -> None:
    # "www.host@example.com": with only "www." broken, GFM linked the tail as mailto:host@example.com
    assert re.search(r"(?<=[.\\])host@example", md("www.host@example.com").replace("\\", "")) is None


def test_md_with_a_www_email_round_trips_through_plain() -> None:
    assert plain(md("www.host@example.com")) == "www.host@example.com"
