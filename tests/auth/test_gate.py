"""The login gate under AppTest: login screen, no-role page, local demo mode and its refusals, and that
the Stripe secret key never reaches the browser or the logs."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.util import patch_config_options

from app_pages.components.text import plain
from lib import access
from lib.config import get_settings
from tests.utils.apptest import APP, PAGES_DIR
from tests.utils.login import AUTH_SECRETS, as_role, logged_in, rendered_text, write_roles

LIVE_KEY = "sk_live_51SecretLiveKeyDoNotShowAbCdEf9876"
NO_ACCESS = "You do not have access to this page"
# An email as an identity provider may send it: the local part is the provider's to allow, and this one is a
# Markdown link with a Streamlit directive.
HOSTILE_EMAIL = "[Session_expired:red[!]](http://host/login)@corp.test"


def app() -> AppTest:
    return AppTest.from_file(APP, default_timeout=30)


def _infos(at: AppTest) -> str:
    return " ".join(e.value for e in [*at.info, *at.error, *at.warning])


def _signed_in_as(at: AppTest) -> str:
    """The sidebar's account caption as it reads on screen (the email in it is escaped Markdown)."""
    return " ".join(plain(c.value) for c in at.sidebar.caption)


def test_login_screen_is_all_an_anonymous_visitor_gets(roles_file: Path) -> None:
    at = app()
    at.secrets = dict(AUTH_SECRETS)
    at.user = {}  # nobody signed in
    at.run()
    assert [b.label for b in at.button] == ["Log in"]
    # no header, no menu, no data
    assert not at.sidebar.children
    assert not at.dataframe
    assert not at.caption
    assert "Local demo" not in _infos(at)


def test_an_email_without_a_completed_login_is_not_a_login(roles_file: Path) -> None:
    """st.user carrying an email but not is_logged_in (what AppTest gives by default) lets nobody in."""
    at = app()
    at.secrets = dict(AUTH_SECRETS)
    at.user = {"email": "ada@corp.test"}
    at.run()
    assert [b.label for b in at.button] == ["Log in"]


def test_one_button_per_named_provider(roles_file: Path) -> None:
    base = {k: v for k, v in AUTH_SECRETS["auth"].items() if k in ("redirect_uri", "cookie_secret")}
    provider = {k: v for k, v in AUTH_SECRETS["auth"].items() if k not in base}
    at = app()
    at.secrets = {"auth": {**base, "google": provider, "okta": provider}}
    at.user = {}
    at.run()
    assert [b.label for b in at.button] == ["Log in with Google", "Log in with Okta"]


def test_incomplete_auth_section_says_what_is_missing(roles_file: Path) -> None:
    at = app()
    at.secrets = {"auth": {"client_id": "x"}}
    at.user = {}
    at.run()
    text = _infos(at)
    assert "redirect_uri" in text
    assert "cookie_secret" in text
    assert "client_secret" in text
    assert not at.button


def test_signed_in_without_a_role_sees_only_the_no_access_page(roles_file: Path) -> None:
    at = logged_in(app(), "stranger@elsewhere.test").run()
    assert "no role has been given" in _infos(at)
    assert "stranger@elsewhere.test" in plain(_infos(at))
    assert [b.label for b in at.button] == ["Log out"]
    assert not at.sidebar.children
    assert not at.dataframe
    for spec in access.PAGES:  # a page opened directly says the same, and nothing else
        page = logged_in(AppTest.from_file(str(PAGES_DIR / spec.file), default_timeout=30),
                         "stranger@elsewhere.test").run()
        assert "no role has been given" in _infos(page), spec.key
        assert [t.value for t in page.title] == ["No access yet"], spec.key  # the page's own title never shows


def test_signed_in_user_sees_who_and_a_logout_button(roles_file: Path) -> None:
    at = as_role(app(), "finance").run()
    sidebar = _signed_in_as(at)
    assert "fran@corp.test" in sidebar
    assert "finance" in sidebar
    assert "Log out" in [b.label for b in at.sidebar.button]
    assert "Local demo" not in _infos(at)


def test_broken_roles_file_lets_nobody_in_and_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "roles.toml"
    bad.write_text("[roles.owner]\nemails = ['ada@corp.test']\n")
    monkeypatch.setenv("ROLES_FILE", str(bad))
    get_settings.cache_clear()
    at = logged_in(app(), "ada@corp.test").run()
    assert "Roles are misconfigured" in _infos(at)
    assert "unknown role 'owner'" in _infos(at)
    assert not at.sidebar.children
    assert not at.dataframe


def test_database_down_at_start_is_one_clear_message(roles_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")
    get_settings.cache_clear()
    at = as_role(app(), "admin").run()
    assert not at.exception
    assert "The cache database did not answer" in at.error[0].value
    assert not at.sidebar.children  # no menu over a database that is not there


def test_local_demo_without_auth_is_bannered_and_admin() -> None:
    at = app().run()  # no [auth], test-mode key, .streamlit/config.toml binds 127.0.0.1
    assert "Local demo, no login" in _infos(at)
    assert "demo@localhost" in _signed_in_as(at)
    at.switch_page("app_pages/audit.py").run()
    assert at.title[0].value == "Audit log"
    assert NO_ACCESS not in _infos(at)


def test_demo_refuses_a_live_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRIPE_API_KEY", LIVE_KEY)
    get_settings.cache_clear()
    at = app().run()
    assert "live-mode key and no login is configured" in _infos(at)
    assert not at.sidebar.children
    assert not at.dataframe
    assert not at.button
    page = AppTest.from_file(str(PAGES_DIR / "customers.py"), default_timeout=30).run()
    assert "live-mode key and no login is configured" in _infos(page)
    assert not page.dataframe


def test_demo_refuses_a_non_loopback_address() -> None:
    with patch_config_options({"server.address": "0.0.0.0"}):
        at = app().run()
    assert "bound to 0.0.0.0" in _infos(at)
    assert not at.sidebar.children


def test_secrets_file_that_does_not_parse_is_not_the_no_login_demo(tmp_path: Path) -> None:
    """A typo in secrets.toml (which holds [auth]) must lock everyone out, not open the admin demo."""
    broken = tmp_path / "secrets.toml"
    broken.write_text('[auth\nredirect_uri = "x"\n')
    with patch_config_options({"secrets.files": [str(broken)]}):
        at = app().run()
    assert "Configuration problem" in _infos(at)
    assert str(broken) in _infos(at)
    assert "Local demo" not in _infos(at)
    assert not at.sidebar.children
    assert not at.dataframe


def test_login_does_not_depend_on_the_address_or_key_mode(roles_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRIPE_API_KEY", LIVE_KEY)
    get_settings.cache_clear()
    with patch_config_options({"server.address": "0.0.0.0"}):
        at = as_role(app(), "admin").run()
    assert not at.error
    assert "ada@corp.test" in _signed_in_as(at)


@pytest.mark.parametrize("mode", ["demo-test-key", "login-live-key"])
def test_secret_key_never_rendered_or_logged(mode: str, roles_file: Path, monkeypatch: pytest.MonkeyPatch,
                                             caplog: pytest.LogCaptureFixture,
                                             capfd: pytest.CaptureFixture[str]) -> None:
    key = get_settings().stripe_api_key if mode == "demo-test-key" else LIVE_KEY
    monkeypatch.setenv("STRIPE_API_KEY", key)
    get_settings.cache_clear()
    caplog.set_level(logging.DEBUG)
    at = app() if mode == "demo-test-key" else as_role(app(), "admin")
    at.run()
    seen = [rendered_text(at)]
    for spec in access.PAGES:
        at.switch_page(f"app_pages/{spec.file}").run()
        assert NO_ACCESS not in _infos(at), spec.key
        seen.append(rendered_text(at))
    text = "\n".join(seen)
    assert key[-4:] in text  # the header's hint is there…
    # …and nothing more of the key
    assert key not in text
    assert key[:-4] not in text
    assert key[8:20] not in text
    out, err = capfd.readouterr()
    assert key not in caplog.text
    assert key not in out
    assert key not in err


def test_a_role_granted_in_roles_toml_applies_on_the_next_load(roles_file: Path) -> None:
    import os

    at = logged_in(app(), "newcomer@corp.test").run()
    assert "no role has been given" in _infos(at)
    roles_file.write_text(roles_file.read_text().replace('"sue@corp.test"', '"sue@corp.test", "newcomer@corp.test"'))
    stat = roles_file.stat()
    os.utime(roles_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # an edit a second later
    at.run()
    assert "no role has been given" not in _infos(at)
    assert "newcomer@corp.test" in _signed_in_as(at)
    assert "support" in rendered_text(at)


def test_no_role_screen_shows_the_email_as_text(roles_file: Path) -> None:
    """The email comes from the identity provider: the no-access box must not render it as a link."""
    at = logged_in(app(), HOSTILE_EMAIL).run()
    assert HOSTILE_EMAIL not in at.info[0].value  # not as Markdown source…
    assert HOSTILE_EMAIL in plain(at.info[0].value)  # …but exactly its characters on screen


def test_signed_in_as_shows_the_email_as_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sidebar's "Signed in as" caption renders Markdown: the provider's email is shown literally."""
    monkeypatch.setenv("ROLES_FILE", str(write_roles(tmp_path / "roles.toml", '[roles.finance]\ngroups = ["fin"]\n')))
    get_settings.cache_clear()
    at = logged_in(app(), HOSTILE_EMAIL, groups=["fin"]).run()
    caption = " ".join(c.value for c in at.sidebar.caption)
    assert HOSTILE_EMAIL not in caption
    assert _signed_in_as(at) == f"Signed in as **{HOSTILE_EMAIL}** · finance"
