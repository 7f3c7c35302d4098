from __future__ import annotations

import pytest

from lib.config import get_settings


@pytest.fixture(autouse=True)
def _fast_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sandbox is local: lift the request budget so the kill-and-resume matrix stays quick."""
    monkeypatch.setenv("STRIPE_REQUESTS_PER_SECOND", "2000")
    get_settings.cache_clear()
