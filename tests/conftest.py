"""Shared fixtures: a real database per backend (SQLite always, PostgreSQL when TEST_DATABASE_URL is set),
settings pointed at it, and Streamlit caches cleared between tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st
from sqlalchemy import Engine
from sqlmodel import Session, SQLModel

from lib.config import get_settings
from lib.db import get_engine
from tests.utils.databases import database, pg_url

TEST_KEY = "sk_test_4eC39HqLyjWDarjtT1zdp7dc"


def _backends() -> list[str]:
    return ["sqlite", "postgresql"] if os.environ.get("TEST_DATABASE_URL") else ["sqlite"]


_pg_url = pg_url  # tests import it from here too


@pytest.fixture(scope="session", params=_backends())
def db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated, empty cache database for this test session (one PostgreSQL schema per worker)."""
    with database(request.param, str(tmp_path_factory.mktemp("db")), name="test") as url:
        yield url


def truncate_all(engine: Engine) -> None:
    with engine.begin() as conn:
        for table in reversed(SQLModel.metadata.sorted_tables):
            conn.execute(table.delete())


@pytest.fixture
def db(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """An emptied cache database that the app's settings point at."""
    monkeypatch.setenv("DATABASE_URL", db_url)
    get_settings.cache_clear()
    engine = get_engine(db_url)
    truncate_all(engine)
    yield engine


@pytest.fixture
def session(db: Engine) -> Iterator[Session]:
    with Session(db, expire_on_commit=False) as s:
        yield s


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Each test starts from known settings and empty Streamlit caches (they outlive AppTest runs)."""
    monkeypatch.setenv("STRIPE_API_KEY", TEST_KEY)
    monkeypatch.setenv("STRIPE_API_BASE", os.environ.get("STRIPE_API_BASE", "http://127.0.0.1:9"))
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'unused.db'}")
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", "whsec_test_secret")
    get_settings.cache_clear()
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def real_stripe_base(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings as against Stripe's own API (STRIPE_API_BASE empty), where "Open in Stripe" links exist."""
    monkeypatch.setenv("STRIPE_API_BASE", "")
    get_settings.cache_clear()


# --- the local Stripe sandbox -----------------------------------------------------------------

from tests.utils.sandbox import SandboxServer  # noqa: E402


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[SandboxServer]:
    """One sandbox process per test worker."""
    server = SandboxServer.start()
    yield server
    server.stop()


@pytest.fixture
def sandbox(sandbox_server: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> SandboxServer:
    """A reset sandbox with no faults, and the app's settings pointed at it."""
    sandbox_server.reset()
    monkeypatch.setenv("STRIPE_API_BASE", sandbox_server.url)
    monkeypatch.setenv("STRIPE_API_KEY", sandbox_server.key)
    get_settings.cache_clear()
    return sandbox_server


@pytest.fixture
def roles_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A roles file with one user per role (tests/utils/login.py), pointed at by ROLES_FILE."""
    from tests.utils.login import write_roles

    path = write_roles(tmp_path / "roles.toml")
    monkeypatch.setenv("ROLES_FILE", str(path))
    get_settings.cache_clear()
    return path
