"""The login gate: the screens between a visitor and the data, and the page check every page runs first.

Streamlit's side of `lib/auth.py`: it reads `[auth]` from `st.secrets`, the signed-in claims from `st.user`
and the bound address from Streamlit's config, and hands them to the plain checks in `lib.auth`. A visitor
who may not go on gets the screen that says why, and the run stops there:

- login not configured: the local demo (everyone an admin) or, off loopback or with a live key, a refusal;
- not signed in: the login screen (or what is missing from an incomplete `[auth]`);
- signed in without a role: the no-access screen;
- a page the roles may not open: "no access" (`require_page`).

    user = require_page("customers")  # first line of every page
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, NoReturn

import streamlit as st

from app_pages.components.text import md
from lib import access
from lib.auth import DEMO_USER, User, auth_problems, demo_refusal, providers, role_rules, user_from_claims
from lib.config import ConfigError, get_settings


def auth_section() -> Mapping[str, Any] | None:
    """`[auth]` from st.secrets (the .streamlit file or `st.App(secrets=...)`), or None when absent;
    ConfigError when a secrets file exists but cannot be read."""
    try:
        section = st.secrets.get("auth")
    except FileNotFoundError as exc:  # StreamlitSecretNotFoundError: no secrets at all, or unreadable
        from streamlit import config

        if any(os.path.exists(p) for p in config.get_option("secrets.files")):
            # A secrets file that does not parse may hold the [auth] meant to protect the data: fail
            # closed rather than fall back to the no-login demo.
            raise ConfigError(f"{exc} Fix the file (TOML) and reload; nobody is let in until then.") from None
        return None
    return section if isinstance(section, Mapping) and len(section) else None


def server_address() -> str:
    """The address the server binds to (Streamlit's server.address; empty means every interface)."""
    from streamlit import config

    return str(config.get_option("server.address") or "")


def _stop() -> NoReturn:
    st.stop()
    raise AssertionError("unreachable")  # st.stop raises; this keeps type checkers honest


def _login_screen(section: Mapping[str, Any]) -> NoReturn:
    st.title("Billing Console")
    problems = auth_problems(section)
    if problems:
        st.error(
            "Login is configured but incomplete: " + "; ".join(problems)
            + ". Ask the operator to finish the [auth] settings (docs/operations.md, 'Login and roles')."
        )
        _stop()
    st.write("Sign in with your company account to see billing data.")
    for name in providers(section):
        label = "Log in" if name == "default" else f"Log in with {name.capitalize()}"
        st.button(label, key=f"auth_login_{name}", type="primary", on_click=st.login, args=(name,))
    _stop()


def _logout_button() -> None:
    st.button("Log out", key="auth_logout", on_click=st.logout)


def _no_role_screen(user: User) -> NoReturn:
    st.title("No access yet")
    st.info(
        f"You are signed in as {md(user.email)}, but no role has been given to this account, so there is "
        "nothing here you may see. Ask a Billing Console admin to add your email, domain or group to "
        "roles.toml; then reload this page."
    )
    _logout_button()
    _stop()


def current_user() -> User:
    """The logged-in user (roles may be empty); stops the run with the screen that explains why there is
    none (login screen, refusal, configuration problem)."""
    try:
        settings = get_settings()
        section = auth_section()
    except ConfigError as exc:
        st.error(f"Configuration problem: {exc}")
        _stop()
    if section is None:
        refusal = demo_refusal(settings, address=server_address(), login_configured=False)
        if refusal:
            st.error(refusal)
            _stop()
        return DEMO_USER
    if not st.user.get("is_logged_in", False):
        _login_screen(section)
    try:
        rules = role_rules(settings)
    except access.RolesFileError as exc:
        st.error(f"Roles are misconfigured, so nobody can be let in: {exc}")
        _logout_button()
        _stop()
    return user_from_claims(st.user.to_dict(), rules)


def _user_with_a_role() -> User:
    """The current user, or the no-access page for one who has no role yet."""
    user = current_user()
    if not user.roles:
        _no_role_screen(user)
    return user


def gate() -> User:
    """app.py's gate: login, no-role page, demo banner. Returns a user who has at least one role."""
    user = _user_with_a_role()
    if user.demo:
        st.warning(
            "**Local demo, no login.** Everyone who can open this address is an admin. "
            "Configure login before sharing it (docs/operations.md, 'Login and roles').",
            icon=":material/science:",
        )
    return user


def render_account(user: User) -> None:
    """Who is signed in, with which roles, and the logout button (sidebar)."""
    with st.sidebar:
        st.caption(f"Signed in as **{md(user.email)}** · {user.role_label}")
        if not user.demo:
            _logout_button()


def require_page(key: str) -> User:
    """Call first on every page: stops the script with a polite message when the role may not see it."""
    user = _user_with_a_role()
    if not access.may_open(user.roles, key):
        st.error("You do not have access to this page. Ask an admin to grant you a role that includes it.")
        _stop()
    return user


