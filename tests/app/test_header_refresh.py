"""The header is redrawn after the page: straight after "Refresh now" it says the cache was just refreshed."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session
from streamlit.testing.v1 import AppTest

from lib.models import utcnow
from tests.utils.apptest import run_app
from tests.utils.factories import make_sync_run
from tests.utils.sandbox import SandboxServer
from tests.utils.wait import wait_until


def header_captions(at: AppTest) -> list[str]:
    return [c.value for c in at.caption if "Cache refreshed" in c.value]


def refresh_now(at: AppTest) -> AppTest:
    """Press Refresh now, again while another test worker's sync holds the lock (shared PostgreSQL)."""
    def pressed() -> bool:
        at.button(key="sync_refresh").click().run(timeout=120)
        return not any("Another sync is already running" in i.value for i in at.info)

    wait_until(pressed, timeout=120, interval=0.5, what="Refresh now ran (the sync lock was free)")
    return at


def test_header_says_just_now_right_after_refresh_now(session: Session, sandbox: SandboxServer) -> None:
    make_sync_run(session, finished_at=utcnow() - timedelta(minutes=5))
    at = run_app(timeout=120).switch_page("app_pages/sync.py").run()
    assert header_captions(at) == [":material/check_circle: Cache refreshed 5 min ago"]
    at = refresh_now(at)
    assert not at.exception, at.exception
    assert header_captions(at) == [":material/check_circle: Cache refreshed just now"]


def test_the_stale_warning_goes_right_after_refresh_now(session: Session, sandbox: SandboxServer) -> None:
    make_sync_run(session, finished_at=utcnow() - timedelta(hours=3))
    at = refresh_now(run_app(timeout=120).switch_page("app_pages/sync.py").run())
    assert [w.value for w in at.warning if "older than" in w.value] == []
