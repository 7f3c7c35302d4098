"""Config errors name the variable and say what to put there."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lib.config import ROOT, ConfigError, load_settings

GOOD = {"STRIPE_API_KEY": "rk_test_abcd1234"}


def test_defaults_from_a_key_alone() -> None:
    s = load_settings(GOOD)
    assert s.key_mode == "test"
    assert s.key_hint == "test …1234"
    assert s.database_url.startswith("sqlite:///")
    assert s.database_url.endswith("data/billing.db")
    assert s.request_budget == 20.0
    assert not s.uses_sandbox


def test_live_key_mode_and_budget() -> None:
    s = load_settings({"STRIPE_API_KEY": "rk_live_zzzz9876"})
    assert s.key_mode == "live"
    assert s.request_budget == 80.0
    assert s.dashboard_path == "https://dashboard.stripe.com/"


def test_postgres_urls_are_normalised_to_psycopg() -> None:
    s = load_settings({**GOOD, "DATABASE_URL": "postgres://u@h:5432/db"})
    assert s.database_url == "postgresql+psycopg://u@h:5432/db"


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({}, "STRIPE_API_KEY"),
        ({"STRIPE_API_KEY": "pk_test_123"}, "STRIPE_API_KEY"),
        ({**GOOD, "STRIPE_API_BASE": "localhost:12111"}, "STRIPE_API_BASE"),
        ({**GOOD, "DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
        ({**GOOD, "PORTAL_RETURN_URL": "example.com"}, "PORTAL_RETURN_URL"),
        ({**GOOD, "PORTAL_RETURN_URL": "https://"}, "PORTAL_RETURN_URL"),
        ({**GOOD, "PORTAL_RETURN_URL": "https://example.com/a b"}, "PORTAL_RETURN_URL"),
        ({**GOOD, "PORTAL_RETURN_URL": "https://example.com/\nx"}, "PORTAL_RETURN_URL"),
        ({**GOOD, "CACHE_STALE_AFTER_MINUTES": "soon"}, "CACHE_STALE_AFTER_MINUTES"),
        ({**GOOD, "STRIPE_REQUESTS_PER_SECOND": "fast"}, "STRIPE_REQUESTS_PER_SECOND"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], names: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(env)
    assert names in str(err.value)
    assert "\n" not in str(err.value)


def test_key_never_in_error_messages() -> None:
    with pytest.raises(ConfigError) as err:
        load_settings({"STRIPE_API_KEY": "sk_test_secret", "DATABASE_URL": "mysql://x"})
    assert "sk_test_secret" not in str(err.value)


def test_database_password_never_in_error_messages() -> None:
    """The message is shown before login (the gate reads the settings first), so a password must not be."""
    with pytest.raises(ConfigError) as err:
        load_settings({**GOOD, "DATABASE_URL": "mysql://billing:hunter2pw@db.internal:3306/billing"})
    assert "hunter2pw" not in str(err.value)
    assert "mysql://billing:***@db.internal" in str(err.value)


def _missing_dir_url(tmp_path: Path) -> tuple[str, str]:
    missing = tmp_path / "nonexistent" / "dir"
    return f"sqlite:///{missing / 'x.db'}", str(missing)


def test_a_sqlite_url_into_a_missing_directory_is_a_config_error(tmp_path: Path) -> None:
    url, missing = _missing_dir_url(tmp_path)
    with pytest.raises(ConfigError) as err:
        load_settings({**GOOD, "DATABASE_URL": url})
    assert str(err.value).startswith("DATABASE_URL=")
    assert f"the directory '{missing}', which does not exist" in str(err.value)


def test_an_engine_for_a_missing_directory_is_refused_and_creates_nothing(tmp_path: Path) -> None:
    from lib.db import get_engine

    url, missing = _missing_dir_url(tmp_path)
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        get_engine(url)
    assert not os.path.exists(missing)


def test_the_sync_cli_refuses_a_missing_directory_without_a_backfill(tmp_path: Path) -> None:
    url, missing = _missing_dir_url(tmp_path)
    env = {**os.environ, "STRIPE_API_KEY": "sk_test_x", "STRIPE_API_BASE": "http://127.0.0.1:9", "DATABASE_URL": url}
    done = subprocess.run([sys.executable, "-m", "lib", "sync", "--full", "--quiet"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.startswith(f"error: DATABASE_URL={url!r} points into the directory '{missing}'")
    assert not os.path.exists(missing)


def test_an_existing_directory_is_fine(tmp_path: Path) -> None:
    assert load_settings({**GOOD, "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}).database_url.endswith("x.db")
