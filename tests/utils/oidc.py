"""A real OpenID Connect provider process (`oidc-provider-mock`) and the files a dashboard needs to log in
through it: `[auth]` in a secrets TOML (handed over by BILLING_SECRETS_FILE) and a roles.toml."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.utils.browser import drain
from tests.utils.net import free_port, wait_http_ok

COOKIE_SECRET = "a-test-cookie-secret-that-is-long-enough-0123456789"


@contextmanager
def oidc_provider(claims: dict[str, Any]) -> Iterator[str]:
    """A provider on 127.0.0.1 whose one predefined user has `claims`; yields its base URL."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "oidc_provider_mock", "--host", "127.0.0.1", "--port", str(port),
         "--user-claims", json.dumps(claims)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http_ok(url + "/.well-known/openid-configuration", timeout=30, proc=proc)
        drain(proc)  # it logs every request
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def login_files(tmp: Path, provider: str, roles_toml: str) -> dict[str, str]:
    """Write secrets.toml (`[auth]` for `provider`) and roles.toml into `tmp`; the environment naming them."""
    secrets = tmp / "secrets.toml"
    secrets.write_text(
        "[auth]\n"
        'redirect_uri = "http://127.0.0.1:{port}/oauth2callback"\n'
        f'cookie_secret = "{COOKIE_SECRET}"\n'
        'client_id = "billing-console"\n'
        'client_secret = "test-client-secret"\n'
        f'server_metadata_url = "{provider}/.well-known/openid-configuration"\n'
    )
    roles = tmp / "roles.toml"
    roles.write_text(roles_toml)
    return {"BILLING_SECRETS_FILE": str(secrets), "ROLES_FILE": str(roles)}


def log_in(page: Any, start: str, provider: str, user: str, *, lands_on: str | None = None) -> None:
    """In the browser: open the dashboard at `start`, press Log in, pick the provider's predefined `user`, and
    wait until the dashboard (at `lands_on`, default `start`: another replica may take the callback) shows who
    is signed in."""
    from tests.utils.browser import wait_idle

    page.goto(start + "/")
    wait_idle(page)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{provider}/oauth2/authorize**")
    page.get_by_role("button", name=user, exact=True).click()
    page.wait_for_url((lands_on or start) + "/**")
    page.locator("[data-testid='stSidebar']").get_by_text("Signed in as").wait_for(timeout=60_000)
