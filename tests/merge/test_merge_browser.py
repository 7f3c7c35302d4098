"""A merge in the real dashboard: the Duplicates page shows the pair, the admin plans, types the survivor's id,
runs it and sees every step done — against the sandbox, in Debian's chromium."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select

from lib.config import get_settings
from lib.db import get_engine, migrate
from lib.models import MergeJob
from lib.sync import run_sync
from tests.merge.world import assert_end_state, make_world
from tests.utils import factories
from tests.utils.browser import browser_page, dashboard, screenshot, wait_idle

pytestmark = [pytest.mark.browser]



def confirm_and_run(page: Any, dialog: Any, survivor: str) -> None:
    """Type the survivor's id into the plan's confirm box, press Run merge and wait until it is verified."""
    confirm = dialog.get_by_label(f"Type the survivor's id ({survivor}) to confirm")
    confirm.fill(survivor)
    confirm.press("Enter")
    wait_idle(page, timeout=60_000)
    dialog.get_by_role("button", name="Run merge").click()
    dialog.get_by_text("Merged. Verified in Stripe").wait_for()
    wait_idle(page, timeout=60_000)

def test_admin_merges_a_cluster_from_the_duplicates_page(sandbox: Any, tmp_path: Path) -> None:
    w = make_world(sandbox)
    db_url = f"sqlite:///{tmp_path / 'cache.db'}"
    migrate(db_url)
    engine = get_engine(db_url)
    with Session(engine) as session:
        factories.make_customer(session, id=w.survivor, name="Pat Doe", email="pat@example.org")
        factories.make_customer(session, id=w.duplicate, name="Pat Doe", email="PAT@example.org")
    env = {"DATABASE_URL": db_url, "STRIPE_API_BASE": sandbox.url, "STRIPE_API_KEY": sandbox.key,
           "STRIPE_REQUESTS_PER_SECOND": "200"}

    with dashboard(env) as url, browser_page() as page:
        page.set_default_timeout(60_000)  # the whole suite runs on 2 busy cores
        page.goto(url + "/duplicates")
        wait_idle(page, timeout=60_000)
        page.get_by_text("1 clusters · 2 customers involved").wait_for()
        page.get_by_role("button", name="Merge duplicates…").click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_role("button", name="Read from Stripe and plan").click()
        dialog.get_by_text("Suggested survivor").wait_for()
        wait_idle(page, timeout=60_000)
        screenshot(page, "merge_plan")
        confirm_and_run(page, dialog, w.survivor)
        assert dialog.get_by_text("succeeded").count() >= 1
        assert dialog.get_by_text("8. Mark").count() >= 1
        screenshot(page, "merge_done")

    with Session(engine) as session:
        (job,) = session.exec(select(MergeJob)).all()
        assert_end_state(sandbox, w, job, session)


def test_merging_a_trialing_customer_keeps_the_trial_and_the_overview_mrr(sandbox: Any, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    w = make_world(sandbox)  # the duplicate has an active subscription and a 14-day trial
    c = sandbox.client
    trial_id = next(s for s in w.old_subs if c.v1.subscriptions.retrieve(s).status == "trialing")
    trial_end = c.v1.subscriptions.retrieve(trial_id).trial_end
    db_url = f"sqlite:///{tmp_path / 'cache.db'}"
    env = {"DATABASE_URL": db_url, "STRIPE_API_BASE": sandbox.url, "STRIPE_API_KEY": sandbox.key,
           "STRIPE_REQUESTS_PER_SECOND": "200"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    get_settings.cache_clear()
    assert run_sync(mode="full").status == "succeeded"  # the cache as the team has it: synced from Stripe

    with dashboard(env) as url, browser_page() as page:
        page.set_default_timeout(60_000)
        page.goto(url + "/")
        wait_idle(page, timeout=60_000)
        page.get_by_text("35.00 USD").first.wait_for()  # 20.00 + 15.00; the trial is not revenue yet
        page.goto(url + "/duplicates")
        wait_idle(page, timeout=60_000)
        page.get_by_role("button", name="Merge duplicates…").click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_role("button", name="Read from Stripe and plan").click()
        dialog.get_by_text("trialing until").wait_for()  # the plan says the trial is kept
        wait_idle(page, timeout=60_000)
        confirm_and_run(page, dialog, w.survivor)
        page.goto(url + "/")
        wait_idle(page, timeout=60_000)
        screenshot(page, "merge_trial_overview_after")
        mrr_line = page.get_by_text("USD", exact=False).filter(has_text=".").all_inner_texts()
        assert any("35.00 USD" in t for t in mrr_line), mrr_line  # unchanged by the merge
        assert not any("50.00 USD" in t for t in mrr_line), mrr_line  # not the trial counted as paying

    copy = next(s for s in c.v1.subscriptions.list(params={"customer": w.survivor, "status": "all"}).data
                if s.metadata.to_dict().get("merged_from") == trial_id)
    assert copy.status == "trialing"
    assert copy.trial_end == trial_end
    with Session(get_engine(db_url)) as session:
        (job,) = session.exec(select(MergeJob)).all()
        assert_end_state(sandbox, w, job, session)
