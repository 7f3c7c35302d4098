"""Who the user is and what they may do: identity from OIDC claims, roles from `roles.toml`, the checks.

Identity comes only from Streamlit's native OIDC login (`st.login` / `st.user`, `[auth]` in secrets): the
claims are read from a cookie Streamlit signed after the provider's callback, so nothing a browser sends
can choose the email or the groups. Roles come from `roles.toml` (`Settings.roles_file`).

Without `[auth]` the dashboard is a local demo with no login (everyone is an admin), and only when it is
bound to a loopback address and the Stripe key is a test-mode key; otherwise it refuses to run.
There is no other way in: no session-state or query-parameter override exists.

This module is plain Python (no Streamlit), so the CLI, workers and the domain layer (`lib/merge/`,
`lib/portal.py`, `lib/invoice_retry.py`) can use `User` and `can`. What needs Streamlit — reading
`st.secrets` and `st.user`, the login, no-role and refusal screens, `require_page` — lives in
`app_pages/components/gate.py` and hands this module plain values.
"""

from __future__ import annotations

import functools
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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


# --- roles --------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def _rules(path: str, stamp: tuple[int, int, int]) -> access.RoleRules:  # noqa: ARG001 - the key, see role_rules
    return access.load_role_rules(path)


def role_rules(settings: Settings) -> access.RoleRules:
    """The role rules from `settings.roles_file` (relative paths are under the project root).

    Parsed once per version of the file: the cache key is the path with the file's modification time,
    size and inode, so an edit (or a file swapped in by rename) is seen by the next call. A missing file
    grants no role; one that cannot be read or parsed raises access.RolesFileError and is tried again on
    the next call (errors are not cached).
    """
    path = settings.roles_file if os.path.isabs(settings.roles_file) else str(ROOT / settings.roles_file)
    try:
        info = os.stat(path)
        stamp = (info.st_mtime_ns, info.st_size, info.st_ino)
    except OSError:
        stamp = (0, 0, 0)
    return _rules(path, stamp)


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


def can(user: User, action: access.Action) -> bool:
    """Whether this user's roles allow `action` (see lib/access.ACTIONS); check before every action."""
    return access.may_do(user.roles, action)


# --- checks at the moment of an action ------------------------------------------------------------


def roles_now(user: User, claims: Mapping[str, Any] | None, *, login_configured: bool) -> User:
    """The same person with roles read again from roles.toml at this moment (a page may have been open
    for hours). `claims` are the user's OIDC claims (st.user); None means nobody is signed in any more, and
    claims of another email than `user`'s mean another login: both give a user with no role.
    `login_configured` says whether `[auth]` is set up now; without it there is no roles.toml in play (the
    gate lets only the local demo run): the user is returned as the gate made it. Raises
    access.RolesFileError when roles.toml cannot be read, ConfigError when the settings cannot."""
    if user.demo:
        return DEMO_USER
    if not login_configured:
        return user
    if not claims or not claims.get("is_logged_in", True):
        return User(email=user.email, name=user.name, roles=frozenset())
    fresh = user_from_claims(claims, role_rules(get_settings()))
    if fresh.email != user.email:
        return User(email=user.email, name=user.name, roles=frozenset())
    return fresh
