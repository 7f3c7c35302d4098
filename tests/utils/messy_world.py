"""The messy world for page tests: a private sandbox seeded with `python -m sandbox.seed --messy` and a cache
filled from it by the real sync (`lib.sync.run_sync`)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from sqlalchemy import create_engine, text

from lib.config import get_settings
from lib.db import get_engine, migrate
from sandbox import messy, seed
from tests.utils.sandbox import SandboxServer

SEED_CUSTOMERS = 10  # the base seed's smallest account; the messy cases come on top


@dataclass(frozen=True)
class World:
    server: SandboxServer
    customers: dict[str, str]  # messy case → customer id (the deleted one included)
    failed_invoice: str


def seed_world(server: SandboxServer) -> World:
    """Seed the sandbox (base + messy) and find each messy case's customer through the SDK."""
    code = seed.main(["--api-base", server.url, "--api-key", server.key, "--customers", str(SEED_CUSTOMERS),
                      "--reset", "--webhook-url", "none", "--messy"])
    assert code == 0, "the messy seed failed"
    client = server.client
    ids = {c.metadata["messy_case"]: c.id for c in client.v1.customers.list({"limit": 100}).auto_paging_iter()
           if "messy_case" in c.metadata}
    deleted_name = f"Deleted {messy.MD_IMAGE}"
    for inv in client.v1.invoices.list({"limit": 100}).auto_paging_iter():
        if inv.customer_name == deleted_name:
            ids["deleted"] = inv.customer
    (failed,) = client.v1.invoices.list({"customer": ids["formula_failed"]}).data
    return World(server=server, customers=ids, failed_invoice=failed.id)


@contextmanager
def database(backend: str, tmp_dir: str) -> Iterator[str]:
    """A new, migrated cache database of its own (a SQLite file, or a PostgreSQL schema dropped after)."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_dir}/messy-cache.db"
        migrate(url)
        yield url
        return
    from tests.conftest import _pg_url

    schema = f"bc_messy_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(_pg_url("public"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = _pg_url(schema)
    try:
        migrate(url)
        yield url
    finally:
        get_engine(url).dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def sync_into(server: SandboxServer, db_url: str) -> None:
    """A full sync from the sandbox into `db_url`, the way `python -m lib sync --full` runs it."""
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env(server, db_url).items():
            mp.setenv(k, v)
        get_settings.cache_clear()
        from lib.sync import run_sync

        result = run_sync(mode="full")
        assert result.status == "succeeded", result.error
    get_settings.cache_clear()


def env(server: SandboxServer, db_url: str) -> dict[str, str]:
    return {"STRIPE_API_KEY": server.key, "STRIPE_API_BASE": server.url, "DATABASE_URL": db_url,
            "STRIPE_REQUESTS_PER_SECOND": "500"}
