"""Messy customers in a real browser: the no-login demo (support's view of a customer) opened on customers
whose names are Markdown or HTML. The name must read as literal text, and nothing planted may become an
image fetched from the planted host (a tracking pixel) or a link to it (a phishing link)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page

from sandbox import messy
from tests.utils.browser import browser_page, dashboard, screenshot, wait_idle
from tests.utils.messy_world import World, database, env, seed_world, sync_into
from tests.utils.sandbox import SandboxServer

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("messy_browser")]

# messy case → the name its detail page must show as text
NAMES = {
    "no_currency": f"{messy.MD_IMAGE} Ann",
    "no_email_jpy": messy.MD_LINK,
    "many_lines": f"Lines {messy.MD_LINK}",
    "html_bhd": f"{messy.HTML_IMG} Eve",
}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, World]]:
    """The messy world synced into SQLite, served by the real dashboard (no login: the demo)."""
    server = SandboxServer.start()
    try:
        world = seed_world(server)
        with database("sqlite", str(tmp_path_factory.mktemp("messy_browser"))) as url:
            sync_into(server, url)
            with dashboard(env(server, url)) as base:
                yield base, world
    finally:
        server.stop()


@pytest.fixture(scope="module")
def page(site: tuple[str, World]) -> Iterator:
    with browser_page() as p:
        yield p


def open_customer(page: Page, site: tuple[str, World], case: str):
    base, world = site
    page.goto(f"{base}/customer?id={world.customers[case]}")
    wait_idle(page, timeout=60_000)
    page.locator("h1").first.wait_for()
    screenshot(page, f"messy_customer_{case}")
    return page


@pytest.mark.parametrize("case", sorted(NAMES))
def test_the_name_is_shown_as_literal_text(page: Page, site: tuple[str, World], case: str) -> None:
    open_customer(page, site, case)
    assert page.locator("h1", has_text=NAMES[case]).count() == 1


@pytest.mark.parametrize("case", sorted(NAMES))
def test_no_image_from_the_planted_source(page: Page, site: tuple[str, World], case: str) -> None:
    open_customer(page, site, case)
    assert page.locator("img[src='http://host/track.png'], img[src='x']").count() == 0


@pytest.mark.parametrize("case", sorted(NAMES))
def test_no_link_to_the_planted_host(page: Page, site: tuple[str, World], case: str) -> None:
    open_customer(page, site, case)
    assert page.locator("a[href^='http://host/']").count() == 0
