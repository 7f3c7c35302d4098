"""Write the next Alembic migration: what lib/models.py has that the migrations so far do not.

Usage: make migration MSG="what changed"   (or .venv/bin/python scripts/new_migration.py "what changed")

Autogenerates against an empty SQLite database upgraded to the current head, numbering the new revision
after the last one (0001, 0002, …). Released migrations are never rewritten: a database already at one of
them upgrades through the new file. Read the generated file before committing (renames come out as drop +
add; derived state such as triggers lives in `lib.triggers.ensure_derived_state`, not in migrations).
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from alembic import command  # noqa: E402

from lib.db import MIGRATIONS, alembic_config  # noqa: E402


def main(message: str) -> None:
    numbers = [int(m.group(1)) for p in (MIGRATIONS / "versions").glob("*.py")
               if (m := re.match(r"(\d{4})_", p.name))]
    rev_id = f"{max(numbers, default=0) + 1:04d}"
    with tempfile.TemporaryDirectory() as tmp:
        config = alembic_config(f"sqlite:///{tmp}/empty.db")
        command.upgrade(config, "head")
        command.revision(config, message=message, autogenerate=True, rev_id=rev_id)
    print("wrote", *sorted(p.name for p in (MIGRATIONS / "versions").glob(f"{rev_id}_*.py")))


if __name__ == "__main__":
    if len(sys.argv) != 2 or not sys.argv[1].strip():
        sys.exit('usage: make migration MSG="what changed"')
    main(sys.argv[1])
