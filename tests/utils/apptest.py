"""Helpers to run the dashboard under Streamlit's AppTest."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from bench.apptest import PAGES_DIR
from bench.apptest import run_page as run_page

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")


def page_files() -> list[Path]:
    """Every page file the app can route to (components/ holds shared widgets, not pages)."""
    return sorted(p for p in PAGES_DIR.glob("*.py") if not p.name.startswith("_"))


def run_app(*, timeout: float = 30) -> AppTest:
    return AppTest.from_file(APP, default_timeout=timeout).run()
