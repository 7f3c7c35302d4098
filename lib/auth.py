"""The logged-in user and the checks every page and action runs first.

Placeholder until the access-control issue lands: without `[auth]` everyone is the local demo admin.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from lib import access


@dataclass(frozen=True)
class User:
    email: str
    name: str
    roles: frozenset[str]
    demo: bool = False

    @property
    def role_label(self) -> str:
        return ", ".join(sorted(self.roles)) or "no role"


def current_user() -> User:
    return User(email="demo@localhost", name="Local demo", roles=access.ALL, demo=True)


def require_page(key: str) -> User:
    """Call first on every page: stops the script with a polite message when the role may not see it."""
    user = current_user()
    if not access.may_open(user.roles, key):
        st.error("You do not have access to this page. Ask an admin to grant you a role that includes it.")
        st.stop()
    return user


def can(user: User, action: str) -> bool:
    return access.may_do(user.roles, action)
