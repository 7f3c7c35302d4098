"""Config errors name the variable and say what to put there."""

from __future__ import annotations

import pytest

from lib.config import ConfigError, load_settings

GOOD = {"STRIPE_API_KEY": "rk_test_abcd1234"}


def test_defaults_from_a_key_alone() -> None:
    s = load_settings(GOOD)
    assert s.key_mode == "test" and s.key_hint == "test …1234"
    assert s.database_url.startswith("sqlite:///") and s.database_url.endswith("data/billing.db")
    assert s.request_budget == 20.0 and not s.uses_sandbox


def test_live_key_mode_and_budget() -> None:
    s = load_settings({"STRIPE_API_KEY": "rk_live_zzzz9876"})
    assert s.key_mode == "live" and s.request_budget == 80.0
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
    assert "hunter2pw" not in str(err.value) and "mysql://billing:***@db.internal" in str(err.value)
