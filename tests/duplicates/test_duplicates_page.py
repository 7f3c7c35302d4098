"""The Duplicates page under AppTest as a logged-in admin: clusters by confidence, evidence, side by side,
filters, paging, re-scan; other roles are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session
from streamlit.testing.v1 import AppTest

from app_pages.components.text import plain
from lib.config import get_settings
from tests.duplicates.factory import add_customer, add_invoice, add_subscription
from tests.utils.apptest import PAGES_DIR
from tests.utils.login import as_role, rendered_text, write_roles


@pytest.fixture
def roles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROLES_FILE", str(write_roles(tmp_path / "roles.toml")))
    get_settings.cache_clear()


def page(role: str = "admin") -> AppTest:
    at = AppTest.from_file(str(PAGES_DIR / "duplicates.py"), default_timeout=30)
    return as_role(at, role).run()


def test_admin_sees_clusters_side_by_side_with_filters(roles: None, session: Session) -> None:
    add_customer(session, id="cus_ann1", email="Ann.Lee@Gmail.com", name="Ann Lee", mrr=4900)
    add_subscription(session, "cus_ann1")
    add_invoice(session, "cus_ann1", status="open", amount=1234)
    add_customer(session, id="cus_ann2", email="annlee+promo@gmail.com", name="Ann Lee")
    add_customer(session, id="cus_bob1", email="bob@one.test", name="Bob Stone", phone="+1 415 555 0101")
    add_customer(session, id="cus_bob2", email="robert@two.test", name="Rob Stone", phone="(415) 555-0101")
    add_customer(session, id="cus_solo", email="solo@gmail.com", name="Ann Lee")  # public domain + name: no link
    at = page()
    assert not at.exception
    assert not at.error
    text = rendered_text(at)
    assert "2 clusters" in text
    assert text.index("cus_ann1") < text.index("cus_bob1")  # email (0.95) before phone (0.75)
    assert "cus_solo" not in text
    assert "Live subscriptions: **1**" in text
    assert "Unpaid invoices: **1**" in text
    assert "12.34" in text
    assert any("annlee@gmail.com" in plain(m.value) for m in at.markdown)  # the evidence: which value linked them
    at.multiselect(key="dup_signals").set_value(["phone"]).run()
    text = rendered_text(at)
    assert "cus_bob1" in text
    assert "cus_ann1" not in text
    at.multiselect(key="dup_signals").set_value([]).run()
    at.slider(key="dup_min_conf").set_value(0.9).run()
    text = rendered_text(at)
    assert "cus_ann1" in text
    assert "cus_bob1" not in text
    assert any(b.key == "dup_cus_ann1_merge_open" for b in at.button)  # a merge per cluster, for admins


def test_rescan_picks_up_new_duplicates_and_paging(roles: None, session: Session) -> None:
    at = page()
    assert any("No duplicates found" in i.value for i in at.info)
    for n in range(12):
        add_customer(session, id=f"cus_p{n:02d}a", email=f"user{n}@corp{n}.test")
        add_customer(session, id=f"cus_p{n:02d}b", email=f"USER{n}@corp{n}.test")
    at.run()
    assert any("No duplicates found" in i.value for i in at.info)  # the scan result is cached…
    at.button(key="dup_rescan").click().run()  # …until Re-scan
    assert "12 clusters" in rendered_text(at)
    assert any("Page 1 of 2" in c.value for c in at.caption)
    at.button(key="dup_next").click().run()
    assert any("Page 2 of 2" in c.value for c in at.caption)
    assert "#11" in rendered_text(at)


@pytest.mark.parametrize("role", ["support", "staff", "finance"])
def test_other_roles_are_refused(roles: None, session: Session, role: str) -> None:
    add_customer(session, id="cus_r1", email="r@x.test")
    add_customer(session, id="cus_r2", email="R@x.test")
    at = page(role)
    assert "You do not have access to this page" in rendered_text(at)
    assert "cus_r1" not in rendered_text(at)


def test_unfinished_merges_are_listed_for_resuming(roles: None, session: Session) -> None:
    from lib.models import MergeJob

    session.add(MergeJob(id="mj_cut_off", created_by="ada@corp.test", survivor_id="cus_s", duplicate_id="cus_d",
                         status="failed", error="Step 2 (cancel_old_subscription): Stripe had an internal error."))
    session.commit()
    at = page()
    assert not at.exception
    assert any("mj_cut_off" in plain(w.value) and "can be resumed" in w.value for w in at.warning)
    assert any(b.key == "dup_job_mj_cut_off_merge_open_pending" for b in at.button)
