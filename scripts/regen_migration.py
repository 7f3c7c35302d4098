"""Regenerate the initial migration from lib/models.py (allowed until the first release ships).

Usage: .venv/bin/python scripts/regen_migration.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from alembic import command  # noqa: E402

from lib.db import MIGRATIONS, alembic_config  # noqa: E402

for old in (MIGRATIONS / "versions").glob("*.py"):
    old.unlink()
with tempfile.TemporaryDirectory() as tmp:
    url = f"sqlite:///{tmp}/empty.db"
    command.revision(alembic_config(url), message="initial schema", autogenerate=True, rev_id="0001")
print("wrote", *sorted(p.name for p in (MIGRATIONS / "versions").glob("*.py")))
