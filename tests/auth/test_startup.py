"""`streamlit run server.py` itself: it refuses to serve without login unless it is a local test-mode demo,
and the refusal names the reason, never the key."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import TEST_KEY
from tests.utils.browser import ROOT, dashboard
from tests.utils.net import free_port

pytestmark = pytest.mark.xdist_group("server_processes")

LIVE_KEY = "sk_live_51SecretLiveKeyDoNotShowAbCdEf9876"
AUTH_TOML = """[auth]
redirect_uri = "http://127.0.0.1:{port}/oauth2callback"
cookie_secret = "startup-test-cookie-secret-0123456789"
client_id = "billing-console"
client_secret = "startup-test-client-secret"
server_metadata_url = "http://127.0.0.1:9/.well-known/openid-configuration"
"""


def _run_server(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Start the real server and wait for it to exit (a refusal exits at import, before binding)."""
    cmd = [sys.executable, "-m", "streamlit", "run", "server.py", "--server.port", str(free_port()),
           "--server.headless", "true", *args]
    full_env = {k: v for k, v in os.environ.items() if k != "BILLING_SECRETS_FILE"} | env
    return subprocess.run(cmd, cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def base_env(tmp_path: Path) -> dict[str, str]:
    return {"DATABASE_URL": f"sqlite:///{tmp_path / 'cache.db'}", "STRIPE_API_BASE": "http://127.0.0.1:9",
            "STRIPE_WEBHOOK_SECRET": "whsec_test_secret"}


def test_live_key_without_login_exits_with_the_reason(base_env: dict[str, str]) -> None:
    proc = _run_server(base_env | {"STRIPE_API_KEY": LIVE_KEY}, "--server.address", "127.0.0.1")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "Refusing to start: STRIPE_API_KEY is a live-mode key and no login is configured" in out
    assert LIVE_KEY not in out
    assert LIVE_KEY[8:20] not in out


def test_no_login_demo_on_every_interface_exits(base_env: dict[str, str]) -> None:
    proc = _run_server(base_env | {"STRIPE_API_KEY": TEST_KEY}, "--server.address", "0.0.0.0")
    assert proc.returncode != 0
    assert "no login is configured and the server is bound to 0.0.0.0" in proc.stdout + proc.stderr
    assert TEST_KEY not in proc.stdout + proc.stderr


def test_unreadable_secrets_file_exits_with_the_path(base_env: dict[str, str], tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    proc = _run_server(base_env | {"STRIPE_API_KEY": LIVE_KEY, "BILLING_SECRETS_FILE": str(missing)},
                       "--server.address", "127.0.0.1")
    assert proc.returncode != 0
    assert f"BILLING_SECRETS_FILE='{missing}' does not exist" in proc.stdout + proc.stderr


def test_live_key_with_login_from_a_secrets_file_starts(
    base_env: dict[str, str], tmp_path: Path
) -> None:
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(AUTH_TOML)
    env = base_env | {"STRIPE_API_KEY": LIVE_KEY, "BILLING_SECRETS_FILE": str(secrets)}
    with dashboard(env) as url:  # it would have exited had [auth] not been found (see the first test)
        with urllib.request.urlopen(url + "/_stcore/health", timeout=5) as resp:
            assert resp.status == 200


def test_streamlit_run_finds_the_app_in_server_py() -> None:
    """The refusal checks wrap the App; `streamlit run` must still serve it as st.App (webhook route too)."""
    from streamlit.web.server.app_discovery import discover_asgi_app

    found = discover_asgi_app(ROOT / "server.py")
    assert (found.is_asgi_app, found.import_string) == (True, "server:app")
