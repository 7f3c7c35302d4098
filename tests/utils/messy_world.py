"""The messy world for page tests: a private sandbox seeded with `python -m sandbox.seed --messy` and a cache
filled from it by the real sync (`lib.sync.run_sync`)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from lib.config import get_settings
from sandbox import messy, seed
from tests.utils.databases import database  # noqa: F401 - the messy tests take it from here
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
