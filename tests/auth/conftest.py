"""Fixtures for the access tests: a roles file with one user per role, pointed at by ROLES_FILE."""

from __future__ import annotations

from pathlib import Path

import pytest

from lib.config import get_settings
from tests.utils.login import write_roles


@pytest.fixture
def roles_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = write_roles(tmp_path / "roles.toml")
    monkeypatch.setenv("ROLES_FILE", str(path))
    get_settings.cache_clear()
    return path
