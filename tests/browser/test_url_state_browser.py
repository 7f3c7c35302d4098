"""A list's view survives the browser's Back and travels as a URL (issue #14, "State in the URL"): signed in
through a real OpenID Connect provider, support searches the customers, filters them, goes to page 2, opens a
customer, and the browser's Back — or the page's own "Back to customer search" — returns to that same view; the
address of the view, opened in another tab (a new session, as a colleague would), shows it too."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import expect
from sqlmodel import Session

from lib.db import get_engine, migrate
from lib.models import utcnow
from tests.utils import factories, oidc
from tests.utils.browser import browser_page, dashboard, screenshot, wait_idle

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("url_state_browser")]

SUPPORT = {"sub": "sam", "email": "sam@corp.test", "email_verified": True, "name": "Sam Support",
           "groups": ["billing-support"]}
ROLES_TOML = 'group_claim = "groups"\n[roles.support]\ngroups = ["billing-support"]\n'
DELINQUENT = 26  # one more than a page of 25: page 2 holds exactly one customer, shown with an "Open …" link


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> str:
    """26 delinquent "filler" customers (newest first: filler00 … filler25), 5 that are not, one other."""
    db_url = f"sqlite:///{tmp_path_factory.mktemp('url_state') / 'cache.db'}"
    migrate(db_url)
    with Session(get_engine(db_url)) as session:
        for i in range(DELINQUENT):
            factories.make_customer(session, email=f"filler{i:02d}@example.net", name=f"Filler {i:02d}",
                                    delinquent=True, created=utcnow() - timedelta(days=i))
        for i in range(5):
            factories.make_customer(session, email=f"filler-ok{i}@example.net", name=f"Filler OK {i}")
        factories.make_customer(session, email="someone@example.com", name="Someone Else")
    return db_url


@pytest.fixture(scope="module")
def signed_in(cache: str, sandbox_server: Any, tmp_path_factory: pytest.TempPathFactory,
              ) -> Iterator[tuple[Any, str]]:
    """A browser signed in as support on a dashboard over `cache`; yields (page, base URL)."""
    with oidc.oidc_provider(SUPPORT) as provider:
        env = {"DATABASE_URL": cache, "STRIPE_API_BASE": sandbox_server.url, "STRIPE_API_KEY": sandbox_server.key,
               **oidc.login_files(tmp_path_factory.mktemp("login"), provider, ROLES_TOML)}
        with dashboard(env) as base, browser_page() as page:
            page.set_default_timeout(60_000)  # two busy cores
            oidc.log_in(page, base, provider, SUPPORT["sub"])
            yield page, base


def search_box(page: Any) -> Any:
    return page.get_by_label("Search", exact=True).and_(page.locator("input"))


def view_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


def filtered_page_two(page: Any, base: str) -> None:
    """Customers: search "filler", tick "Delinquent only", go to page 2 (one customer on it)."""
    page.goto(base + "/customers")
    wait_idle(page)
    search_box(page).fill("filler")
    search_box(page).press("Enter")
    wait_idle(page)
    page.get_by_text("Delinquent only").click()
    page.get_by_text(f"{DELINQUENT} customer(s)").wait_for()
    wait_idle(page)
    page.get_by_role("button", name="Next →").click()
    page.get_by_text("Page 2 ·").wait_for()
    wait_idle(page)


def assert_same_view(page: Any) -> None:
    """The filtered page 2: the search text, the ticked filter, the page, and its one customer."""
    page.get_by_text("Page 2 ·").wait_for()
    # expect() waits for the widgets to show their values (React sets them just after the page's text)
    expect(search_box(page)).to_have_value("filler")
    expect(page.get_by_role("checkbox", name="Delinquent only")).to_be_checked()
    expect(page.get_by_role("link", name="Open filler25@example.net")).to_be_visible()


def test_back_returns_to_the_filtered_page(signed_in: tuple[Any, str]) -> None:
    page, base = signed_in
    filtered_page_two(page, base)
    assert view_of(page.url) == {"cust_search": ["filler"], "cust_delinquent": ["1"], "cust_page": ["2"]}
    page.get_by_role("link", name="Open filler25@example.net").click()
    page.wait_for_url("**/customer?id=*")
    page.get_by_role("heading", name="Filler 25").wait_for()
    page.go_back()
    wait_idle(page)
    assert_same_view(page)
    screenshot(page, "url_state_back")
    page.go_back()  # once more: the same search before "Next →", on page 1
    wait_idle(page)
    page.get_by_text("Page 1 ·").wait_for()
    expect(search_box(page)).to_have_value("filler")


def test_back_to_customer_search_returns_to_the_filtered_page(signed_in: tuple[Any, str]) -> None:
    page, base = signed_in
    filtered_page_two(page, base)
    page.get_by_role("link", name="Open filler25@example.net").click()
    page.get_by_role("heading", name="Filler 25").wait_for()
    wait_idle(page)
    page.get_by_role("link", name="Back to customer search").click()
    wait_idle(page)
    assert_same_view(page)


def test_a_copied_url_opens_the_same_view(signed_in: tuple[Any, str]) -> None:
    page, base = signed_in
    filtered_page_two(page, base)
    colleague = page.context.new_page()  # a new tab: a new Streamlit session
    colleague.set_default_timeout(60_000)
    colleague.goto(page.url)
    wait_idle(colleague)
    assert_same_view(colleague)
    screenshot(colleague, "url_state_copied")
