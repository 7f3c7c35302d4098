"""One dashboard page run under Streamlit's AppTest: what `bench/pages.py` times and the page tests drive
(tests/utils/apptest.py re-exports `run_page`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from streamlit.testing.v1 import AppTest

PAGES_DIR = Path(__file__).resolve().parents[1] / "app_pages"


def run_page(name: str, *, timeout: float = 30, query: dict[str, str] | None = None, **state: Any) -> AppTest:
    """Run one page file directly, with optional session_state and query params set first."""
    at = AppTest.from_file(str(PAGES_DIR / name), default_timeout=timeout)
    for key, value in state.items():
        at.session_state[key] = value
    for key, value in (query or {}).items():
        at.query_params[key] = value
    return at.run()
