"""Small failures a user can meet end in a clear message: a NaN or out-of-range "Trial ends within", and
"Refresh now" with the cache database down (no raw driver text)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from sqlmodel import Session
from streamlit.testing.v1 import AppTest

from lib.config import get_settings
from tests.utils.apptest import run_page
from tests.utils.factories import make_customer, make_subscription


@pytest.fixture
def subs(session: Session) -> None:
    make_subscription(session, make_customer(session, email="t@example.com"), status="trialing")


@pytest.mark.parametrize("days", [math.nan, 1000, -5])
def test_bad_trial_days_is_not_a_traceback(subs: None, days: float) -> None:
    at = run_page("subscriptions.py", subs_trial_days=days)
    assert not at.exception, [e.value for e in at.exception]


def test_nan_trial_days_says_what_to_type(subs: None) -> None:
    at = run_page("subscriptions.py", subs_trial_days=math.nan)
    assert any("0 to 365" in w.value for w in at.warning), [w.value for w in at.warning]


def test_bad_trial_days_still_lists_subscriptions(subs: None) -> None:
    at = run_page("subscriptions.py", subs_trial_days=math.nan)
    assert len(at.dataframe(key="subs_table").value) == 1


@pytest.fixture
def database_down(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """DATABASE_URL points at a PostgreSQL port where nothing listens."""
    from tests.utils.net import free_port

    monkeypatch.setenv("DATABASE_URL", f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none?connect_timeout=2")
    get_settings.cache_clear()


def refresh(at: AppTest) -> None:
    at.button(key="sync_refresh").click().run(timeout=60)


def test_refresh_with_the_database_down_names_the_cause(database_down: None) -> None:
    at = run_page("sync.py", timeout=60)
    refresh(at)
    assert any("Refresh now" in e.value and "cache database did not answer" in e.value for e in at.error), \
        [e.value for e in at.error]


def test_refresh_with_the_database_down_shows_no_driver_text(database_down: None) -> None:
    at = run_page("sync.py", timeout=60)
    refresh(at)
    shown = " ".join(e.value for e in at.error)
    assert "connection" not in shown.lower(), shown
    assert "psycopg" not in shown.lower(), shown


def test_refresh_with_the_database_down_is_not_a_traceback(database_down: None) -> None:
    at = run_page("sync.py", timeout=60)
    refresh(at)
    assert not at.exception
