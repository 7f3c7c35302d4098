"""Login through a real OpenID Connect provider process, and what an anonymous visitor can see.

The provider is `oidc-provider-mock` (a separate process on 127.0.0.1); the dashboard is the real
`streamlit run server.py`, given `[auth]` through BILLING_SECRETS_FILE so nothing is written into the
repository's .streamlit/ folder.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page
from sqlmodel import Session

from lib import access
from lib.db import get_engine, migrate
from tests.conftest import TEST_KEY
from tests.utils import oidc
from tests.utils.browser import browser_page, dashboard, screenshot, wait_idle
from tests.utils.factories import make_customer
from tests.utils.net import free_port

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("login_browser")]

STAFF = {"sub": "sam", "email": "sam@corp.test", "email_verified": True, "name": "Sam Staff",
         "groups": ["billing-staff"]}
ROLES_TOML = """
group_claim = "groups"
[roles.staff]
groups = ["billing-staff"]
[roles.admin]
emails = ["ada@corp.test"]
"""
LEAK_EMAIL = "leak-check-customer@corp.test"


@pytest.fixture(scope="module")
def oidc_provider() -> Iterator[str]:
    """A real OIDC provider process with one predefined user (the staff member, with a group claim)."""
    with oidc.oidc_provider(STAFF) as url:
        yield url


@pytest.fixture(scope="module")
def login_env(oidc_provider: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for a dashboard with login: secrets and roles in a temp dir, one seeded customer."""
    tmp = tmp_path_factory.mktemp("login")
    files = oidc.login_files(tmp, oidc_provider, ROLES_TOML)
    db_url = f"sqlite:///{tmp / 'cache.db'}"
    migrate(db_url)
    with Session(get_engine(db_url)) as session:
        make_customer(session, email=LEAK_EMAIL, name="Leak Check")
    return {
        **files, "DATABASE_URL": db_url,
        "STRIPE_API_KEY": TEST_KEY, "STRIPE_API_BASE": "http://127.0.0.1:9",
    }


def _nav_titles(page: Page) -> list[str]:
    """Titles in the sidebar menu (each link's text ends with the title, after the icon's ligature name)."""
    return [t.strip().splitlines()[-1] for t in page.locator("[data-testid='stSidebarNav'] a").all_inner_texts()]


def test_login_sees_own_pages_is_refused_others_and_logs_out(login_env: dict[str, str], oidc_provider: str) -> None:
    with dashboard(login_env) as url, browser_page() as page:
        oidc.log_in(page, url, oidc_provider, STAFF["sub"])  # the provider's predefined user
        wait_idle(page)
        sidebar = page.locator("[data-testid='stSidebar']").inner_text()
        assert "sam@corp.test" in sidebar
        assert "staff" in sidebar
        nav = _nav_titles(page)
        staff_pages = [p.title for p in access.PAGES if access.may_open({"staff"}, p.key)]
        assert sorted(nav) == sorted(staff_pages)
        assert "Audit log" not in nav
        assert "Duplicates" not in nav
        screenshot(page, "login_staff_home")

        page.goto(url + "/audit")  # an admin page, by direct URL
        wait_idle(page)
        page.get_by_text("You do not have access to this page").wait_for()
        assert page.get_by_role("heading", name="Audit log").count() == 0

        page.get_by_role("button", name="Log out").click()
        page.wait_for_url(f"{oidc_provider}/oauth2/end_session**")  # RP-initiated logout at the provider
        page.get_by_role("button", name="End session").click()
        page.wait_for_url(url + "/**")
        page.get_by_role("button", name="Log in").wait_for()
        wait_idle(page)
        assert "Signed in as" not in page.content()
        page.goto(url + "/customers")
        wait_idle(page)
        page.get_by_role("button", name="Log in").wait_for()


def test_anonymous_visitor_sees_login_screen_and_no_data_on_every_page(login_env: dict[str, str]) -> None:
    with dashboard(login_env) as url, browser_page() as page:
        for spec in access.PAGES:  # the first request to a fresh server is the first page URL
            page.goto(f"{url}/{spec.key}")
            wait_idle(page)
            page.get_by_role("button", name="Log in").wait_for()
            html = page.content()
            assert LEAK_EMAIL not in html, spec.key
            assert "Leak Check" not in html, spec.key
            assert "Signed in as" not in html
            assert _nav_titles(page) == [], spec.key
        screenshot(page, "login_anonymous")


def test_login_started_on_one_replica_finishes_on_another(login_env: dict[str, str], oidc_provider: str,
                                                          tmp_path: Path) -> None:
    """Two dashboard processes sharing one secrets file (behind a load balancer): the provider's callback
    lands on the other replica, which must accept the login state the first one signed."""
    port_b = free_port()
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(Path(login_env["BILLING_SECRETS_FILE"]).read_text().replace("{port}", str(port_b)))
    env = login_env | {"BILLING_SECRETS_FILE": str(secrets)}
    with dashboard(env) as url_a, dashboard(env, port=port_b) as url_b, browser_page() as page:
        oidc.log_in(page, url_a, oidc_provider, STAFF["sub"], lands_on=url_b)
        assert "sam@corp.test" in page.locator("[data-testid='stSidebar']").inner_text()
