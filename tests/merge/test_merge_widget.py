"""The merge dialog under AppTest against the sandbox: what an admin clicks, and what others never see."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import Session
from streamlit.testing.v1 import AppTest

from app_pages.components.text import plain
from lib.ids import IdKind, id_problem
from tests.merge.world import World, assert_end_state, last_seq, make_world


def widget_script() -> None:
    import streamlit as st

    from app_pages.components.merge import merge_action
    from lib.auth import User

    user = User(email="ada@corp.test", name="Ada", roles=frozenset(st.session_state["t_roles"]))
    merge_action(user, st.session_state["t_customer"], key_prefix="t", other_ids=st.session_state.get("t_others"))


def run(roles: set[str], customer: str, others: list[str] | None = None) -> AppTest:
    at = AppTest.from_function(widget_script, default_timeout=60)
    at.session_state["t_roles"] = sorted(roles)
    at.session_state["t_customer"] = customer
    at.session_state["t_others"] = others
    return at.run()


def texts(at: AppTest) -> str:
    return "\n".join(plain(e.value) for kind in (at.markdown, at.text, at.error, at.warning, at.success, at.info)
                     for e in kind)


def test_admin_plans_confirms_and_merges_from_a_cluster(sandbox: Any, session: Session) -> None:
    w: World = make_world(sandbox)
    at = run({"admin"}, w.duplicate, [w.duplicate, w.survivor])
    at.button(key="t_merge_open").click().run()
    assert at.selectbox(key="t_merge_other_pick").value == w.survivor
    at.button(key="t_merge_plan_btn").click().run()
    assert not at.exception, at.exception
    assert at.radio(key="t_merge_survivor_choice").value == w.survivor  # it has paid the most
    shown = texts(at)
    assert "Recreate" in shown
    assert "now, without refund or proration" in shown
    assert "merged_into" in shown
    assert "(Pro × 3)" in shown  # products by name …
    assert "price_" not in shown  # … never as price ids
    assert "trialing until" in shown  # the trial is kept, to the same day
    assert at.button(key="t_merge_run").disabled  # nothing runs before the survivor's id is typed
    at.text_input(key="t_merge_confirm").input("cus_wrong").run()
    assert at.button(key="t_merge_run").disabled
    at.text_input(key="t_merge_confirm").input(w.survivor).run()
    at.button(key="t_merge_run").click().run()
    assert not at.exception, at.exception
    assert any("Merged. Verified in Stripe" in s.value for s in at.success), texts(at)
    from sqlmodel import select

    from lib.models import MergeJob

    (job,) = session.exec(select(MergeJob)).all()
    assert_end_state(sandbox, w, job, session)


def test_switching_the_survivor_replans(sandbox: Any, session: Session) -> None:
    w = make_world(sandbox, duplicate_extra=False)
    at = run({"admin"}, w.duplicate)
    at.button(key="t_merge_open").click().run()
    at.text_input(key="t_merge_other").input(w.survivor).run()
    at.button(key="t_merge_plan_btn").click().run()
    first = at.radio(key="t_merge_survivor_choice").value
    other = w.duplicate if first == w.survivor else w.survivor
    since = last_seq(sandbox)
    at.radio(key="t_merge_survivor_choice").set_value(other).run()
    assert not at.exception, at.exception
    assert at.radio(key="t_merge_survivor_choice").value == other
    assert f"Type the survivor's id ({other})" in plain(at.text_input(key="t_merge_confirm").label)
    assert f"Mark {first} with metadata merged_into={other}" in texts(at)  # the steps follow the new survivor
    assert sandbox.requests(since) == [], "switching reuses the facts just read: no second read from Stripe"


def test_blocked_plan_shows_reasons_and_no_run_button(sandbox: Any, session: Session) -> None:
    w = make_world(sandbox, duplicate_extra=False)
    sandbox.client.v1.prices.update(w.price_seats, params={"active": False})  # a new subscription cannot use it
    at = run({"admin"}, w.duplicate, [w.duplicate, w.survivor])
    at.button(key="t_merge_open").click().run()
    at.button(key="t_merge_plan_btn").click().run()
    assert any("cannot run yet" in e.value for e in at.error)
    assert "is archived" in texts(at)
    assert not [b for b in at.button if b.key == "t_merge_run"]


def test_missing_customer_and_non_admins(sandbox: Any, session: Session) -> None:
    at = run({"admin"}, "cus_missing")
    at.button(key="t_merge_open").click().run()
    at.text_input(key="t_merge_other").input("cus_missingtoo").run()
    at.button(key="t_merge_plan_btn").click().run()
    assert any("does not exist in Stripe" in plain(e.value) for e in at.error)
    for roles in ({"support"}, {"staff"}, {"finance"}):
        at = run(roles, "cus_x")
        assert not at.button, roles
        assert not at.exception, roles


@pytest.mark.parametrize("typed", ["cus_x/../cus_Y", "cus_abc?expand[]=x", "sub_123", "cus_ab c", "cus_é"])
def test_a_malformed_other_id_is_refused_before_any_stripe_call(sandbox: Any, session: Session,
                                                                typed: str) -> None:
    w: World = make_world(sandbox, duplicate_extra=False)
    since = last_seq(sandbox)
    at = run({"admin"}, w.survivor)
    at.button(key="t_merge_open").click().run()
    at.text_input(key="t_merge_other").input(typed).run()
    at.button(key="t_merge_plan_btn").click().run()
    assert not at.exception, at.exception
    assert any("is not a customer id" in e.value for e in at.error), texts(at)  # lib.ids.id_problem's words
    assert sandbox.requests(since) == []  # nothing reached Stripe, not even a read
    assert not [b for b in at.button if b.key == "t_merge_run"]


def test_a_markdown_other_id_is_refused_with_lib_ids_message_shown_as_text(sandbox: Any, session: Session) -> None:
    w: World = make_world(sandbox, duplicate_extra=False)
    typed = "[Session expired - log in](http://evil.example/login)"
    at = run({"admin"}, w.survivor)
    at.button(key="t_merge_open").click().run()
    at.text_input(key="t_merge_other").input(typed).run()
    at.button(key="t_merge_plan_btn").click().run()
    error = next(e.value for e in at.error if "not a customer id" in e.value)
    assert plain(error) == f"The other customer's id: {id_problem(IdKind.CUSTOMER, typed)}"


def test_a_markdown_other_id_is_no_link_in_the_error(sandbox: Any, session: Session) -> None:
    w: World = make_world(sandbox, duplicate_extra=False)
    at = run({"admin"}, w.survivor)
    at.button(key="t_merge_open").click().run()
    at.text_input(key="t_merge_other").input("[Session expired](http://evil.example/login)").run()
    at.button(key="t_merge_plan_btn").click().run()
    assert [e.value for e in at.error if "](http" in e.value] == []


def test_no_card_warning_needs_the_checkbox_and_offers_an_update_card_link(sandbox: Any, session: Session) -> None:
    w = make_world(sandbox, survivor_card=False, duplicate_extra=False)
    at = run({"admin"}, w.duplicate, [w.duplicate, w.survivor])
    at.button(key="t_merge_open").click().run()
    at.button(key="t_merge_plan_btn").click().run()
    at.radio(key="t_merge_survivor_choice").set_value(w.survivor).run()
    assert any("no usable default payment method" in x.value for x in at.warning)
    assert any(b.key == "t_mergepm_portal_toggle" for b in at.button)  # the update-card link, one click away
    at.text_input(key="t_merge_confirm").input(w.survivor).run()
    assert at.button(key="t_merge_run").disabled  # typed id is not enough: the warning must be acknowledged
    at.checkbox(key="t_merge_ack_no_payment_method").check().run()
    assert not at.button(key="t_merge_run").disabled


def test_a_crashed_merge_is_resumed_from_the_page(sandbox: Any, session: Session) -> None:
    import pytest

    from lib import merge
    from tests.merge.world import ADMIN

    w = make_world(sandbox)
    plan = merge.plan_merge((w.duplicate, w.survivor), survivor_id=w.survivor)
    job = merge.create_job(plan, user=ADMIN, session=session, confirm_text=w.survivor)

    def crash(when: str, step: merge.MergeStep) -> None:
        if step.seq == 3 and when == "after_call":
            raise merge.MergeCrash("the server was restarted")

    with pytest.raises(merge.MergeCrash):
        merge.run_job(job.id, user=ADMIN, session=session, hook=crash)
    from tests.merge.world import runner_died_long_ago

    runner_died_long_ago(session, job.id)
    at = run({"admin"}, w.survivor)
    assert any(job.id in plain(x.value) and "can be resumed" in x.value for x in at.warning)
    at.button(key="t_merge_open_pending").click().run()
    assert "running" in texts(at)
    assert ":material/check_circle:] 2." in texts(at)
    assert ":material/schedule: 4." in texts(at)
    at.button(key=f"t_merge_resume_{job.id}").click().run()
    assert not at.exception, at.exception
    assert any("Merged. Verified in Stripe" in s.value for s in at.success), texts(at)
    session.expire_all()
    assert_end_state(sandbox, w, session.get(merge.MergeJob, job.id), session)
