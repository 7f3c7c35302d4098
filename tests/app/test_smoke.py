"""Every page file and the entry run without an exception on an empty cache."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from lib import access
from tests.utils.apptest import page_files, run_app, run_page


def test_every_page_file_is_routed() -> None:
    routed = {p.file for p in access.PAGES}
    assert {p.name for p in page_files()} == routed


@pytest.mark.parametrize("name", [p.name for p in page_files()])
def test_page_runs_without_exception(db: Engine, name: str) -> None:
    at = run_page(name)
    assert not at.exception, at.exception
    assert at.title, f"{name} shows no title"


def test_app_entry_runs_and_shows_overview(db: Engine) -> None:
    at = run_app()
    assert not at.exception, at.exception
    assert any("Billing Console" in t.value for t in at.title)
