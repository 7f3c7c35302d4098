"""Helpers to run the dashboard under Streamlit's AppTest."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")
PAGES_DIR = ROOT / "app_pages"


def page_files() -> list[Path]:
    """Every page file the app can route to (components/ holds shared widgets, not pages)."""
    return sorted(p for p in PAGES_DIR.glob("*.py") if not p.name.startswith("_"))


def run_page(name: str, *, timeout: float = 30, query: dict[str, str] | None = None, **state) -> AppTest:
    """Run one page file directly, with optional session_state and query params set first."""
    at = AppTest.from_file(str(PAGES_DIR / name), default_timeout=timeout)
    for key, value in state.items():
        at.session_state[key] = value
    for key, value in (query or {}).items():
        at.query_params[key] = value
    return at.run()


def run_app(*, timeout: float = 30) -> AppTest:
    return AppTest.from_file(APP, default_timeout=timeout).run()
