"""`lib/` is the domain layer: the CLI, the sync worker and the benchmarks import it without the UI.

Every lib module is imported in a fresh interpreter, and the test names the first module after whose
import a UI package (Streamlit, or the pandas/altair the pages chart and tabulate with) was loaded.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import lib

ROOT = Path(__file__).resolve().parents[1]
# Released migration revisions and Alembic's environment script run only inside Alembic (env.py reads
# `context.config` at import); their imports are Alembic's and SQLAlchemy's.
NOT_IMPORTABLE = ("lib.migrations.versions", "lib.migrations.env")

PROBE = """
import importlib, json, sys
found = {}
for name in json.loads(sys.argv[1]):
    importlib.import_module(name)
    for package in json.loads(sys.argv[2]):
        if package in sys.modules and package not in found:
            found[package] = name
print(json.dumps(found))
"""


def lib_module_names() -> list[str]:
    """Every importable module under lib/, found by walking the package."""
    names = [m.name for m in pkgutil.walk_packages(lib.__path__, "lib.")]
    return sorted(n for n in names if not n.startswith(NOT_IMPORTABLE))


def first_importers(packages: list[str]) -> dict[str, str]:
    """package → the first lib module whose import (in a fresh interpreter) loaded it."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(lib_module_names()), json.dumps(packages)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_walk_finds_the_domain_modules() -> None:
    names = lib_module_names()
    assert {"lib.auth", "lib.merge", "lib.portal", "lib.invoice_retry", "lib.sync.run"} <= set(names)


@pytest.mark.parametrize("package", ["streamlit", "pandas", "altair"])
def test_lib_imports_no_ui_package(package: str) -> None:
    assert first_importers([package]) == {}
