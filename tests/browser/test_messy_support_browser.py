"""A messy customer opened by support after a real login (issue #12): the dashboard with `[auth]`, a real
OpenID Connect provider process (`oidc-provider-mock`) whose user is in the support group of roles.toml, and
the messy world synced from the sandbox. The customer's Markdown name reads as literal text; nothing planted
becomes an image fetched from, or a link to, the planted host."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page

from sandbox import messy
from tests.utils import oidc
from tests.utils.browser import browser_page, dashboard, screenshot, wait_idle
from tests.utils.messy_world import World, database, env, seed_world, sync_into
from tests.utils.sandbox import SandboxServer

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("messy_support_browser")]

SUPPORT = {"sub": "sue", "email": "sue@corp.test", "email_verified": True, "name": "Sue Support",
           "groups": ["billing-support"]}
ROLES_TOML = 'group_claim = "groups"\n[roles.support]\ngroups = ["billing-support"]\n'
CASE = "no_currency"
NAME = f"{messy.MD_IMAGE} Ann"  # the seed's name for this case: a Markdown image (a tracking pixel), then Ann


@pytest.fixture(scope="module")
def oidc_provider() -> Iterator[str]:
    """A real OIDC provider process whose one predefined user is the support agent."""
    with oidc.oidc_provider(SUPPORT) as url:
        yield url


@pytest.fixture(scope="module")
def opened(oidc_provider: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Page]:
    """The messy customer's detail page, in a browser signed in as support (yields the Playwright page)."""
    tmp = tmp_path_factory.mktemp("messy_support")
    server = SandboxServer.start()
    try:
        world: World = seed_world(server)
        with database("sqlite", str(tmp)) as url:
            sync_into(server, url)
            login = oidc.login_files(tmp, oidc_provider, ROLES_TOML)
            with dashboard({**env(server, url), **login}) as base, browser_page() as page:
                oidc.log_in(page, base, oidc_provider, SUPPORT["sub"])
                page.goto(f"{base}/customer?id={world.customers[CASE]}")
                wait_idle(page, timeout=60_000)
                page.locator("h1").first.wait_for(timeout=60_000)
                screenshot(page, "messy_customer_opened_by_support")
                yield page
    finally:
        server.stop()


def test_the_customer_is_opened_by_support(opened: Page) -> None:
    sidebar = opened.locator("[data-testid='stSidebar']").inner_text()
    assert "sue@corp.test" in sidebar
    assert "support" in sidebar


def test_support_sees_the_markdown_name_as_literal_text(opened: Page) -> None:
    assert opened.locator("h1", has_text=NAME).count() == 1


def test_support_fetches_no_image_from_the_planted_host(opened: Page) -> None:
    assert opened.locator("img[src^='http://host/']").count() == 0


def test_support_gets_no_link_to_the_planted_host(opened: Page) -> None:
    assert opened.locator("a[href^='http://host/']").count() == 0
