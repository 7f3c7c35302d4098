"""The server process: the dashboard (app.py) plus Stripe's webhook route, in one st.App.

`streamlit run server.py` detects the App below and serves both. Before the App exists, this module
refuses to start a no-login dashboard that could leak data (live key, or bound beyond 127.0.0.1).
`BILLING_SECRETS_FILE` may name a secrets TOML outside `.streamlit/` (e.g. a mounted secret); its
top-level tables, such as `[auth]`, are handed to the App and override `.streamlit/secrets.toml`.
"""

from __future__ import annotations

import os
import sys

from streamlit.runtime.secrets import secrets_singleton
from streamlit.starlette import App

from app_pages.components.gate import server_address
from lib.auth import SECRETS_FILE_ENV, demo_refusal, read_secrets_file
from lib.config import ConfigError, get_settings
from lib.webhooks import routes


def _extra_secrets() -> dict | None:
    path = os.environ.get(SECRETS_FILE_ENV, "").strip()
    return read_secrets_file(path) if path else None


def _login_configured(extra: dict | None) -> bool:
    if extra and extra.get("auth"):
        return True
    return bool(secrets_singleton.load_if_toml_exists() and secrets_singleton.get("auth"))


try:
    _secrets = _extra_secrets()
    _refusal = demo_refusal(get_settings(), address=server_address(), login_configured=_login_configured(_secrets))
except ConfigError as exc:
    sys.exit(f"Billing Console cannot start: {exc}")
if _refusal:
    sys.exit(f"Billing Console: {_refusal}")
if _secrets:
    # Merge now as well as through App(secrets=...): the App builds its session middleware (which signs the
    # login's OAuth state) before its lifespan merges secrets, and that signature must use [auth].cookie_secret
    # so a login that starts on one replica can finish on another.
    secrets_singleton.load_if_toml_exists()
    try:
        secrets_singleton.merge_programmatic_secrets(_secrets)
    except TypeError as exc:  # a TOML value st.secrets cannot hold (e.g. a date)
        sys.exit(f"Billing Console cannot start: {SECRETS_FILE_ENV} holds an unsupported value: {exc}")

app = App("app.py", routes=routes(), secrets=_secrets)
