"""Two real dashboard processes on one cache database behave as one product: a follow-up saved through one
replica shows on the other within 2 s, although each keeps its own query cache (60 s TTL).

Both servers are `streamlit run server.py` (no-login demo on 127.0.0.1); the test talks to them over
Streamlit's own websocket protocol (`bench/stclient.py`), as a browser tab would.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from bench.stclient import RunResult, StSession
from tests.conftest import TEST_KEY
from tests.utils.browser import dashboard
from tests.utils.factories import make_customer, make_failed_invoice

pytestmark = [pytest.mark.xdist_group("replicas")]  # two server processes: one such test at a time

NOTE = "Called on Monday; promised to pay Friday"


def _note(res: RunResult, invoice_id: str) -> str | None:
    """The follow-up note the worklist shows for one invoice (None when the row is not shown)."""
    table = res.table("fi_table")
    if table is None:
        return None
    rows = table.select(["id", "followup_note"]).to_pylist()
    return next((r["followup_note"] or "" for r in rows if r["id"] == invoice_id), None)


async def _follow_up_across(url_a: str, url_b: str, invoice_id: str) -> tuple[str | None, list[tuple[float, str]]]:
    """B shows the worklist (its cache now holds it); A saves a note; B reruns (as a user pressing R would)
    until it shows the note or 20 s pass. Returns B's note before, and for each of B's reruns after the save:
    (seconds from the save confirmed to the rerun's start, the note it showed). A run's start, not its end, is
    when B read its data, so a slow machine does not count as stale data."""
    b = await StSession.open(url_b)
    a = await StSession.open(url_a)
    try:
        before = _note(await b.run(page="failed-invoices"), invoice_id)
        await a.run(page="failed-invoices")
        saved = await a.run(set={"fi_fu_note": NOTE, "fi_fu_status": "promised"}, click="fi_fu_save")
        assert "saved" in saved.text()
        t0 = time.monotonic()
        runs: list[tuple[float, str]] = []
        while time.monotonic() - t0 < 20 and (not runs or runs[-1][1] != NOTE):
            started = time.monotonic() - t0
            runs.append((started, _note(await b.run(), invoice_id) or ""))
        return before, runs
    finally:
        await a.close()
        await b.close()


def test_follow_up_saved_on_one_replica_shows_on_the_other_within_2_s(db: Engine, db_url: str) -> None:
    with Session(db) as session:
        invoice_id = make_failed_invoice(session, make_customer(session, email="late@payer.test")).id
    env = {"DATABASE_URL": db_url, "STRIPE_API_KEY": TEST_KEY, "STRIPE_API_BASE": "http://127.0.0.1:9"}
    with dashboard(env) as url_a, dashboard(env) as url_b:
        before, runs = asyncio.run(_follow_up_across(url_a, url_b, invoice_id))
    assert before == ""
    assert runs[-1][1] == NOTE  # B shows it at last
    assert [start for start, note in runs if start >= 2.0 and note != NOTE] == []  # never stale after 2 s
