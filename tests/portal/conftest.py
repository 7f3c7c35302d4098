"""Portal-link fixtures (helpers live in tests/portal/helpers.py)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.portal.helpers import make_configuration


@pytest.fixture
def configured(sandbox: Any) -> str:
    """The sandbox with a default portal configuration; returns its id."""
    return make_configuration(sandbox)
