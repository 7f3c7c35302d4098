"""Run pages as a logged-in user under AppTest: `[auth]` secrets plus `at.user`, the way Streamlit's
native login fills `st.user` — no test-only path through the product code."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from streamlit.testing.v1 import AppTest

AUTH_SECRETS: dict[str, Any] = {
    "auth": {
        "redirect_uri": "http://127.0.0.1:8501/oauth2callback",
        "cookie_secret": "apptest-cookie-secret-0123456789abcdef",
        "client_id": "billing-console",
        "client_secret": "apptest-client-secret",
        "server_metadata_url": "http://127.0.0.1:9/.well-known/openid-configuration",
    }
}
ROLE_EMAILS = {"support": "sue@corp.test", "staff": "sam@corp.test", "finance": "fran@corp.test",
               "admin": "ada@corp.test"}
ROLES_TOML = "\n".join(f'[roles.{role}]\nemails = ["{email}"]' for role, email in ROLE_EMAILS.items()) + "\n"


def write_roles(path: Path, text: str = ROLES_TOML) -> Path:
    path.write_text(text)
    return path


def logged_in(at: AppTest, email: str, **claims: Any) -> AppTest:
    """Configure login and sign `email` in (claims such as groups= go into st.user)."""
    at.secrets = copy.deepcopy(AUTH_SECRETS)
    at.user = {"is_logged_in": True, "email": email, "email_verified": True, **claims}
    return at


def as_role(at: AppTest, role: str) -> AppTest:
    """Sign in the ROLES_TOML user who has exactly `role` (ROLES_FILE must point at ROLES_TOML)."""
    return logged_in(at, ROLE_EMAILS[role])


def rendered_text(at: AppTest) -> str:
    """Everything the last run sent to the browser, as text (element protos, incl. table data)."""
    out: list[str] = []

    def walk(node: Any) -> None:
        proto = getattr(node, "proto", None)
        if proto is not None:
            out.append(str(proto))
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return "\n".join(out)
