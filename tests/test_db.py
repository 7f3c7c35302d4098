"""Migrations: replicas that start together on one PostgreSQL all come up with the schema applied once."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text

from lib.db import alembic_config
from tests.conftest import TEST_KEY, _pg_url
from tests.utils.apptest import ROOT

pytestmark = pytest.mark.skipif(not os.environ.get("TEST_DATABASE_URL"), reason="needs TEST_DATABASE_URL")


def test_concurrent_migrations_on_a_fresh_schema_all_succeed() -> None:
    schema = f"bc_migrate_{uuid.uuid4().hex[:8]}"
    admin = create_engine(_pg_url("public"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        env = {**os.environ, "DATABASE_URL": _pg_url(schema), "STRIPE_API_KEY": TEST_KEY}
        procs = [
            subprocess.Popen([sys.executable, "-m", "lib", "migrate"], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            for _ in range(3)
        ]
        outputs = [(p.wait(timeout=120), p.stdout.read().decode()) for p in procs]
        assert all(code == 0 for code, _ in outputs), outputs
        engine = create_engine(_pg_url(schema))
        head = ScriptDirectory.from_config(alembic_config(_pg_url(schema))).get_current_head()
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [head]
        tables = set(inspect(engine).get_table_names())
        assert {"customers", "invoices", "audit_log", "invoice_recovery_daily"} <= tables
        engine.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
