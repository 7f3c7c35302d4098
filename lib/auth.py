"""The logged-in user and the checks every page and action runs first.

Identity comes only from Streamlit's native OIDC login (`st.login` / `st.user`, `[auth]` in secrets): the
user dict is read from a cookie Streamlit signed after the provider's callback, so nothing a browser sends
can choose the email or the groups. Roles come from `roles.toml` (`Settings.roles_file`).

Without `[auth]` the dashboard is a local demo with no login (everyone is an admin), and only when it is
bound to a loopback address and the Stripe key is a test-mode key; otherwise it refuses to run.
There is no other way in: no session-state or query-parameter override exists.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

import streamlit as st

from lib import access
from lib.config import ROOT, ConfigError, Settings, get_settings

SECRETS_FILE_ENV = "BILLING_SECRETS_FILE"  # a secrets.toml outside .streamlit/, read by server.py
DEMO_EMAIL = "demo@localhost"
AUTH_REQUIRED_KEYS = ("redirect_uri", "cookie_secret")
PROVIDER_REQUIRED_KEYS = ("client_id", "client_secret", "server_metadata_url")


@dataclass(frozen=True)
class User:
    email: str
    name: str
    roles: frozenset[str]
    demo: bool = False

    @property
    def role_label(self) -> str:
        """The roles as shown to people and as every audit row's `role` column stores them."""
        return ", ".join(r for r in access.ROLES if r in self.roles) or "no role"


DEMO_USER = User(email=DEMO_EMAIL, name="Local demo", roles=access.ALL, demo=True)


# --- configuration: is login set up, and may the demo run? ---------------------------------------


def read_secrets_file(path: str) -> dict[str, Any]:
    """Parse a secrets TOML file for `st.App(secrets=...)`; a bad path or bad TOML is a clear error."""
    import tomllib

    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{SECRETS_FILE_ENV}={path!r} does not exist: point it at a secrets.toml file.") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{SECRETS_FILE_ENV}={path!r} could not be read as TOML: {exc}") from None


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


def providers(section: Mapping[str, Any]) -> list[str]:
    """Provider names for `st.login(name)`: "default" for a flat [auth], else each [auth.<name>] table."""
    named = [k for k, v in section.items() if isinstance(v, Mapping) and "client_id" in v]
    if "client_id" in section or not named:
        return ["default", *named]
    return named


def auth_problems(section: Mapping[str, Any]) -> list[str]:
    """What is missing from [auth], in words an operator can act on (empty when complete)."""
    problems = [f"[auth] needs {key}" for key in AUTH_REQUIRED_KEYS if key not in section]
    for name in providers(section):
        table = section if name == "default" else section[name]
        missing = [key for key in PROVIDER_REQUIRED_KEYS if key not in table]
        if missing:
            where = "[auth]" if name == "default" else f"[auth.{name}]"
            problems.append(f"{where} needs {', '.join(missing)}")
    return problems


def is_loopback(address: str) -> bool:
    """True for 127.0.0.1/::1 (and 'localhost'); an empty address binds every interface."""
    if address.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def demo_refusal(settings: Settings, *, address: str, login_configured: bool) -> str | None:
    """Why the dashboard must not run without login, or None when it may (never mentions the key itself)."""
    if login_configured:
        return None
    if settings.key_mode == "live":
        return (
            "Refusing to start: STRIPE_API_KEY is a live-mode key and no login is configured. "
            "Add an [auth] section to .streamlit/secrets.toml (or set BILLING_SECRETS_FILE) as described in "
            "docs/operations.md, 'Login and roles'; the no-login demo runs only with a test-mode key."
        )
    if not is_loopback(address):
        shown = address or "all interfaces"
        return (
            f"Refusing to start: no login is configured and the server is bound to {shown}. "
            "The no-login demo runs only on 127.0.0.1 (server.address in .streamlit/config.toml or "
            "--server.address 127.0.0.1); to serve other machines, configure [auth] as described in "
            "docs/operations.md, 'Login and roles'."
        )
    return None


def server_address() -> str:
    """The address the server binds to (Streamlit's server.address; empty means every interface)."""
    from streamlit import config

    return str(config.get_option("server.address") or "")


# --- roles --------------------------------------------------------------------------------------


@st.cache_data(ttl=60, show_spinner=False)
def _rules(path: str, mtime_ns: int) -> access.RoleRules:  # noqa: ARG001 - mtime makes edits visible
    return access.load_role_rules(path)


def role_rules(settings: Settings) -> access.RoleRules:
    path = settings.roles_file if os.path.isabs(settings.roles_file) else str(ROOT / settings.roles_file)
    try:
        mtime = os.stat(path).st_mtime_ns
    except OSError:
        mtime = 0
    return _rules(path, mtime)


def _claim_list(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return []


def email_verified(claims: Mapping[str, Any], rules: access.RoleRules) -> bool:
    """Whether the email may grant roles (by exact email or domain).

    Only a provider's explicit yes counts: `email_verified` is boolean true or the string "true" (any case).
    A provider listed in roles.toml's `trusted_email_issuers` (matched exactly against the `iss` claim)
    vouches for its emails when it sends no `email_verified` at all. Anything else — false, "False", 1,
    "yes", or absent from an untrusted provider — is unverified.
    """
    claim = claims.get("email_verified")
    if claim is True or (isinstance(claim, str) and claim.strip().lower() == "true"):
        return True
    return claim is None and str(claims.get("iss") or "") in rules.trusted_email_issuers


def user_from_claims(claims: Mapping[str, Any], rules: access.RoleRules) -> User:
    """Roles for an OIDC user; an email not verified (see `email_verified`) grants nothing by email or
    domain, while the provider's groups still grant theirs."""
    email = str(claims.get("email") or "")
    by_email = email if email_verified(claims, rules) else ""
    groups = _claim_list(claims.get(rules.group_claim))
    roles = access.roles_for(rules, email=by_email, groups=groups)
    name = str(claims.get("name") or email or claims.get("sub") or "")
    return User(email=email or str(claims.get("sub") or ""), name=name, roles=roles)


# --- the gate -----------------------------------------------------------------------------------


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
        f"You are signed in as {user.email}, but no role has been given to this account, so there is "
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
        st.caption(f"Signed in as **{user.email}** · {user.role_label}")
        if not user.demo:
            _logout_button()


def require_page(key: str) -> User:
    """Call first on every page: stops the script with a polite message when the role may not see it."""
    user = _user_with_a_role()
    if not access.may_open(user.roles, key):
        st.error("You do not have access to this page. Ask an admin to grant you a role that includes it.")
        _stop()
    return user


def can(user: User, action: str) -> bool:
    """Whether this user's roles allow `action` (see lib/access.ACTIONS); check before every action."""
    return access.may_do(user.roles, action)


# --- checks at the moment of an action ------------------------------------------------------------


def roles_now(user: User, claims: Mapping[str, Any] | None) -> User:
    """The same person with roles read again from roles.toml at this moment (a page may have been open
    for hours). `claims` are the user's OIDC claims (st.user); None means nobody is signed in any more, and
    claims of another email than `user`'s mean another login: both give a user with no role. Without login
    configured there is no roles.toml in play (the gate lets only the local demo run): the user is returned
    as the gate made it. Raises access.RolesFileError when roles.toml cannot be read, ConfigError when the
    secrets cannot."""
    if user.demo:
        return DEMO_USER
    if auth_section() is None:
        return user
    if not claims or not claims.get("is_logged_in", True):
        return User(email=user.email, name=user.name, roles=frozenset())
    fresh = user_from_claims(claims, role_rules(get_settings()))
    if fresh.email != user.email:
        return User(email=user.email, name=user.name, roles=frozenset())
    return fresh
