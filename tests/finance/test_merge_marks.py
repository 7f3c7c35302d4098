"""Merged-away customers are marked everywhere: a real merge against the sandbox leaves `customers.merged_into`
in the cache, the customer page shows "Merged into <survivor> on <date> by <who>" with a link to the survivor,
the survivor lists "merged from", the Customers page labels the row, and the Duplicates page drops the merged
cluster without a Re-scan and finds a customer's cluster by id, email or name."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlmodel import Session
from streamlit.testing.v1 import AppTest

from lib import mapping, merge, queries
from lib.models import AuditLog, Customer, utcnow
from tests.merge.world import ADMIN, make_world
from tests.utils.apptest import PAGES_DIR, run_page
from tests.utils.factories import make_customer
from tests.utils.sandbox import SandboxServer

AT = datetime(2026, 11, 30, 16, 45, tzinfo=UTC)


def _markdown(at: AppTest) -> str:
    """Every Markdown text the run rendered (links of st.page_link's AppTest fallback included)."""
    return "\n".join(m.value for m in at.markdown)


def test_a_real_merge_marks_the_duplicate_in_the_cache_and_on_both_pages(sandbox: SandboxServer,
                                                                         session: Session) -> None:
    w = make_world(sandbox)
    plan = merge.plan_merge((w.duplicate, w.survivor), survivor_id=w.survivor)
    job = merge.create_job(plan, user=ADMIN, session=session, confirm_text=w.survivor)
    job = merge.run_job(job.id, user=ADMIN, session=session)
    assert job.status == "succeeded", job.error
    session.expire_all()
    assert session.get(Customer, w.duplicate).merged_into == w.survivor
    mark = queries.merged_into(session=session, customer_id=w.duplicate)
    assert (mark.survivor, mark.by) == (w.survivor, ADMIN.email)
    assert mark.at is not None

    at = run_page("customer_detail.py", query={"id": w.duplicate})
    assert not at.exception, at.exception
    banner = [x.value for x in at.warning if "Merged into" in x.value]
    assert len(banner) == 1
    plain = banner[0].replace("\\", "")
    assert plain.startswith(f"Merged into {w.survivor} on {mark.at:%Y-%m-%d %H:%M} UTC by {ADMIN.email}.")
    assert f"(customer?id={w.survivor})" in _markdown(at)  # the link to the survivor

    at = run_page("customer_detail.py", query={"id": w.survivor})
    assert not at.exception, at.exception
    assert not [x for x in at.warning if "Merged into" in x.value]
    assert f"(customer?id={w.duplicate})" in _markdown(at)
    assert "Merged from 1 customer(s)" in [c.value for c in at.caption]


@pytest.fixture
def merged(session: Session) -> dict[str, str]:
    """A survivor, a customer merged into it (with the merge step's audit row) and an unmerged one."""
    survivor = make_customer(session, email="ana@corp.example", name="Ana Lima")
    dup = make_customer(session, email="Ana@Corp.example", name="Ana Lima", merged_into=survivor.id,
                        metadata_={"merged_into": survivor.id})
    session.add(AuditLog(created_at=AT, actor="ada@corp.test", role="admin", action="merge_step",
                         customer_id=dup.id, object_id=survivor.id, flow="mark_duplicate", result="succeeded"))
    session.commit()
    other = make_customer(session, email="bob@corp.example", name="Bob Stone")
    return {"survivor": survivor.id, "dup": dup.id, "other": other.id}


def test_banner_with_who_and_when_from_the_audit_log(merged: dict[str, str]) -> None:
    at = run_page("customer_detail.py", query={"id": merged["dup"]})
    assert not at.exception, at.exception
    banner = [x.value.replace("\\", "") for x in at.warning if "Merged into" in x.value]
    assert banner == [f"Merged into {merged['survivor']} on 2026-11-30 16:45 UTC by ada@corp.test. This record is "
                      "kept for history: work with the surviving customer."]


def test_a_merge_made_elsewhere_says_so(session: Session) -> None:
    survivor = make_customer(session, email="s@example.com")
    dup = make_customer(session, email="d@example.com", merged_into=survivor.id)
    at = run_page("customer_detail.py", query={"id": dup.id})
    banner = [x.value.replace("\\", "") for x in at.warning if "Merged into" in x.value]
    assert banner[0].startswith(f"Merged into {survivor.id} (no merge record in this dashboard: made elsewhere).")


def test_customers_page_labels_merged_rows(merged: dict[str, str]) -> None:
    at = run_page("customers.py", cust_search="ana@corp.example")
    assert not at.exception, at.exception
    df = at.dataframe(key="cust_table").value
    labels = dict(zip(df["id"], df["flags"], strict=True))
    assert labels == {merged["survivor"]: "", merged["dup"]: f"merged into {merged['survivor']}"}


def test_mapping_takes_only_a_valid_other_customer_id() -> None:
    row = mapping.customer_row({"id": "cus_A", "created": 1, "metadata": {"merged_into": "cus_B"}}, 1)
    assert row["merged_into"] == "cus_B"
    for bad in ("cus_B)](javascript:alert(1)", "not-an-id", "cus_A", "", None, 7):
        row = mapping.customer_row({"id": "cus_A", "created": 1, "metadata": {"merged_into": bad}}, 1)
        assert row["merged_into"] is None, bad


# --- duplicates -------------------------------------------------------------------------------------------------


@pytest.fixture
def clusters(session: Session) -> dict[str, str]:
    """Two clusters by email: the Lima pair and the Stone pair."""
    ids = {}
    for key, email, name in (("a1", "ana.lima@corp.example", "Ana Lima"), ("a2", "Ana.Lima@corp.example", "Ana L"),
                             ("b1", "bob.stone@corp.example", "Bob Stone"),
                             ("b2", "BOB.stone@corp.example", "Robert Stone")):
        ids[key] = make_customer(session, email=email, name=name).id
    return ids


def _cluster_members(at: AppTest) -> list[str]:
    return [x.value for x in at.markdown if x.value.startswith("**[")]


def test_duplicates_drop_a_merged_cluster_without_a_rescan(clusters: dict[str, str], session: Session) -> None:
    at = AppTest.from_file(str(PAGES_DIR / "duplicates.py"), default_timeout=30).run()
    assert not at.exception, at.exception
    assert len(_cluster_members(at)) == 4
    dup = session.get(Customer, clusters["a2"])
    dup.merged_into, dup.synced_at = clusters["a1"], utcnow()  # as the merge's cache refresh writes it
    session.add(dup)
    session.commit()
    at.run()  # the scan is still cached (no Re-scan)
    assert not at.exception, at.exception
    shown = "\n".join(_cluster_members(at))
    assert clusters["a1"] not in shown
    assert clusters["b1"] in shown


@pytest.mark.parametrize("how", ["id", "email", "name"])
def test_duplicates_find_a_customers_cluster(how: str, clusters: dict[str, str], session: Session) -> None:
    text = {"id": clusters["b2"], "email": "bob.stone@corp.example", "name": "robert"}[how]
    at = AppTest.from_file(str(PAGES_DIR / "duplicates.py"), default_timeout=30).run()
    at.text_input(key="dup_find").input(text).run()
    assert not at.exception, at.exception
    shown = "\n".join(_cluster_members(at))
    assert clusters["b1"] in shown
    assert clusters["a1"] not in shown


def test_duplicates_search_with_no_match_says_so(clusters: dict[str, str]) -> None:
    at = AppTest.from_file(str(PAGES_DIR / "duplicates.py"), default_timeout=30).run()
    at.text_input(key="dup_find").input("nobody@nowhere.example").run()
    assert "No customer matches that search. Check the id, email or name." in [i.value for i in at.info]


def _link_labels(at: AppTest) -> list[str]:
    """The labels of the links to other customers, as the browser shows them (escapes resolved once: Streamlit
    renders a page link's label as Markdown)."""
    from app_pages.components.text import plain

    return [plain(m.value.split("](")[0].lstrip("[")) for m in at.markdown if "](customer?id=" in m.value]


def test_link_to_the_survivor_reads_without_backslashes(merged: dict[str, str]) -> None:
    # Found in the browser: "Open cus\_X8jv… \(the surviving customer\)" (the label was escaped twice).
    at = run_page("customer_detail.py", query={"id": merged["dup"]})
    assert _link_labels(at) == [f"Open {merged['survivor']} (the surviving customer)"]


def test_merged_from_link_reads_without_backslashes(merged: dict[str, str]) -> None:
    at = run_page("customer_detail.py", query={"id": merged["survivor"]})
    assert _link_labels(at) == [f"{merged['dup']} · Ana Lima on 2026-11-30 16:45 UTC by ada@corp.test"]
