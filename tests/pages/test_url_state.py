"""A list's view lives in its URL: query parameters restore the search, filters, sort and page; changing them
updates the URL; a hostile or unknown value in the URL is ignored (named, never shown, never a traceback);
"Back to customer search" returns to the search as it was; Customer detail without an id is a search box."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qsl

import pytest
from sqlalchemy import Engine
from sqlmodel import Session
from streamlit.testing.v1 import AppTest

from app_pages.components import urlstate
from app_pages.components.text import plain
from lib.models import utcnow
from tests.utils.apptest import APP, PAGES_DIR, run_page
from tests.utils.factories import make_customer, make_failed_invoice, make_subscription

HOSTILE = "[click me](javascript:alert(1)) <img src=x onerror=alert(1)> **bold**"


@pytest.fixture
def crowd(session: Session) -> dict[str, list[str]]:
    """30 customers named "Filler" (two pages of 25), newest first by creation, and two others."""
    fillers = [make_customer(session, email=f"filler{i:02d}@example.net", name=f"Filler {i:02d}",
                             created=utcnow() - timedelta(days=i)).id for i in range(30)]
    eur = make_customer(session, email="euro@example.org", name="Euro Person", currency="eur", delinquent=True)
    make_subscription(session, eur, status="active", currency="eur")
    other = make_customer(session, email="other@example.com", name="Other One")
    return {"fillers": fillers, "eur": [eur.id], "other": [other.id]}


def ids(at: AppTest, key: str = "cust_table") -> list[str]:
    found = [d for d in at.dataframe if d.key == key]
    return list(found[0].value["id"]) if found else []


def shown_text(at: AppTest) -> str:
    """Everything rendered as Markdown (captions, alerts, titles), as it reads on screen."""
    parts = [*at.markdown, *at.caption, *at.info, *at.warning, *at.error, *at.title]
    return "\n".join(plain(p.value) for p in parts)


def customers(**query: str | list[str]) -> AppTest:
    at = AppTest.from_file(str(PAGES_DIR / "customers.py"), default_timeout=30)
    for key, value in query.items():
        at.query_params[key] = value
    return at.run()


# --- URL -> widgets ---------------------------------------------------------------------------------------


def test_a_shared_url_restores_search_and_filters(crowd: dict[str, list[str]]) -> None:
    at = customers(cust_search="euro", cust_currency="EUR", cust_delinquent="1", cust_sort="Name A–Z")
    assert not at.exception, at.exception
    assert at.text_input(key="cust_search").value == "euro"
    assert at.selectbox(key="cust_currency").value == "EUR"
    assert at.checkbox(key="cust_delinquent").value is True
    assert at.selectbox(key="cust_sort").value == "Name A–Z"
    assert ids(at) == crowd["eur"]


def test_a_shared_url_restores_the_page_number(crowd: dict[str, list[str]]) -> None:
    at = customers(cust_search="filler", cust_page="2")
    assert not at.exception, at.exception
    assert ids(at) == crowd["fillers"][25:]


def test_a_page_past_the_end_shows_the_first_page(crowd: dict[str, list[str]]) -> None:
    at = customers(cust_search="filler", cust_page="9")
    assert ids(at) == crowd["fillers"][:25]
    assert "cust_page" not in at.query_params


# --- widgets -> URL ---------------------------------------------------------------------------------------


def test_changing_the_search_writes_it_to_the_url(crowd: dict[str, list[str]]) -> None:
    at = customers()
    at.text_input(key="cust_search").input("filler").run()
    assert at.query_params["cust_search"] == "filler"


def test_changing_a_filter_writes_it_to_the_url(crowd: dict[str, list[str]]) -> None:
    at = customers()
    at.selectbox(key="cust_currency").select("EUR").run()
    assert at.query_params["cust_currency"] == "EUR"


def test_a_filter_back_at_its_default_leaves_the_url(crowd: dict[str, list[str]]) -> None:
    at = customers(cust_currency="EUR")
    at.selectbox(key="cust_currency").select("Any").run()
    assert "cust_currency" not in at.query_params


def test_next_page_writes_the_page_number(crowd: dict[str, list[str]]) -> None:
    at = customers(cust_search="filler")
    at.button(key="cust_next").click().run()
    assert at.query_params["cust_page"] == "2"


def test_a_new_search_goes_back_to_page_one_in_the_url(crowd: dict[str, list[str]]) -> None:
    at = customers(cust_search="filler", cust_page="2")
    at.text_input(key="cust_search").input("fill").run()
    assert "cust_page" not in at.query_params


def test_back_in_the_browser_restores_the_earlier_view(crowd: dict[str, list[str]],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The browser's Back reruns the page with the earlier URL while the widgets still hold the later view
    (Streamlit marks such a run; the browser test goes Back for real)."""
    at = customers(cust_search="filler", cust_page="2")
    at.text_input(key="cust_search").input("other").run()
    assert ids(at) == crowd["other"]
    at.query_params["cust_search"] = "filler"  # what Back puts into the address bar
    at.query_params["cust_page"] = "2"
    monkeypatch.setattr(urlstate, "history_navigation", lambda: True)
    at.run()
    assert at.text_input(key="cust_search").value == "filler"
    assert ids(at) == crowd["fillers"][25:]


def test_a_rerun_with_an_older_url_keeps_what_the_user_typed(crowd: dict[str, list[str]]) -> None:
    """A click sent before the browser got the last run's URL carries the URL before it: not a Back."""
    at = customers()
    at.text_input(key="cust_search").input("filler").run()
    del at.query_params["cust_search"]  # the URL as it was before that run wrote the search
    at.checkbox(key="cust_delinquent").check().run()
    assert at.text_input(key="cust_search").value == "filler"


def test_a_rerun_with_an_older_url_writes_the_search_back(crowd: dict[str, list[str]]) -> None:
    at = customers()
    at.text_input(key="cust_search").input("filler").run()
    del at.query_params["cust_search"]
    at.checkbox(key="cust_delinquent").check().run()
    assert at.query_params["cust_search"] == "filler"


# --- hostile or unknown values -----------------------------------------------------------------------------


@pytest.mark.parametrize("param,value,label", [
    ("cust_currency", HOSTILE, "Currency"),
    ("cust_sort", "DROP TABLE customers", "Sort"),
    ("cust_page", "-1", "Page"),
    ("cust_page", "1e9", "Page"),
    ("cust_from", "not-a-date", "Created from"),
    ("cust_delinquent", "maybe", "Delinquent only"),
    ("cust_search", "x" * 5000, "Search"),
    ("cust_search", "line\nbreak\x00nul", "Search"),
    ("cust_currency", ["EUR", "USD"], "Currency"),
])
def test_a_bad_url_value_is_ignored_and_named(crowd: dict[str, list[str]], param: str, value: str,
                                              label: str) -> None:
    at = customers(**{param: value})
    assert not at.exception, at.exception
    assert f"value for “{label}” is not valid here" in shown_text(at)


def test_a_bad_url_value_leaves_the_url(crowd: dict[str, list[str]]) -> None:
    at = customers(cust_currency=HOSTILE)
    assert "cust_currency" not in at.query_params


def test_a_bad_url_value_falls_back_to_the_default(crowd: dict[str, list[str]]) -> None:
    at = customers(cust_currency=HOSTILE)
    assert at.selectbox(key="cust_currency").value == "Any"


def test_a_hostile_url_value_is_never_shown(crowd: dict[str, list[str]]) -> None:
    at = customers(cust_currency=HOSTILE, cust_sort=HOSTILE, cust_page=HOSTILE)
    assert "javascript" not in shown_text(at)


def test_hostile_search_text_stays_text(crowd: dict[str, list[str]]) -> None:
    """Search text is free text: a link in it is searched for and stays in the box, never rendered."""
    at = customers(cust_search=HOSTILE)
    assert not at.exception, at.exception
    assert at.text_input(key="cust_search").value == HOSTILE
    assert not any("](javascript" in m.value for m in at.markdown)


# --- the other list pages -------------------------------------------------------------------------------------


def test_subscriptions_filters_round_trip(session: Session) -> None:
    c = make_customer(session, email="s@example.com")
    make_subscription(session, c, status="past_due")
    at = run_page("subscriptions.py", query={"subs_status": ["past_due", "active"], "subs_trial_days": "14"})
    assert not at.exception, at.exception
    assert at.multiselect(key="subs_status").value == ["past_due", "active"]
    assert at.number_input(key="subs_trial_days").value == 14
    at.checkbox(key="subs_cape").check().run()
    assert at.query_params["subs_cape"] == "1"


def test_subscriptions_unknown_status_is_ignored(session: Session) -> None:
    at = run_page("subscriptions.py", query={"subs_status": ["past_due", HOSTILE]})
    assert at.multiselect(key="subs_status").value == []


def test_failed_invoices_filters_round_trip(session: Session) -> None:
    c = make_customer(session, email="f@example.com")
    make_failed_invoice(session, c, decline_code="expired_card")
    at = run_page("failed_invoices.py", query={"fi_decline": "expired_card", "fi_sort": "Oldest first"})
    assert not at.exception, at.exception
    assert at.selectbox(key="fi_decline").value == "expired_card"
    at.selectbox(key="fi_age").select("0–7 days").run()
    assert at.query_params["fi_age"] == "0–7 days"


def test_duplicates_filters_round_trip(session: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lib.config import get_settings
    from tests.utils.login import as_role, write_roles

    monkeypatch.setenv("ROLES_FILE", str(write_roles(tmp_path / "roles.toml")))
    get_settings.cache_clear()
    at = AppTest.from_file(str(PAGES_DIR / "duplicates.py"), default_timeout=30)
    at.query_params["dup_min_conf"] = "0.9"
    at.query_params["dup_signals"] = "phone"
    at = as_role(at, "admin").run()
    assert not at.exception, at.exception
    assert at.slider(key="dup_min_conf").value == 0.9
    assert at.multiselect(key="dup_signals").value == ["phone"]


def test_duplicates_confidence_off_the_scale_is_ignored(session: Session, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from lib.config import get_settings
    from tests.utils.login import as_role, write_roles

    monkeypatch.setenv("ROLES_FILE", str(write_roles(tmp_path / "roles.toml")))
    get_settings.cache_clear()
    at = AppTest.from_file(str(PAGES_DIR / "duplicates.py"), default_timeout=30)
    at.query_params["dup_min_conf"] = "0.333"
    at = as_role(at, "admin").run()
    assert at.slider(key="dup_min_conf").value == 0.0


def test_duplicates_search_from_a_link_is_never_markdown(session: Session, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The search box's refusal quotes what was typed; from a shared link that is an attacker's text."""
    from lib.config import get_settings
    from tests.utils.login import as_role, write_roles

    monkeypatch.setenv("ROLES_FILE", str(write_roles(tmp_path / "roles.toml")))
    get_settings.cache_clear()
    make_customer(session, email="a@example.com")
    at = AppTest.from_file(str(PAGES_DIR / "duplicates.py"), default_timeout=30)
    at.query_params["dup_find"] = "cus_[x](javascript:alert(1))"
    at = as_role(at, "admin").run()
    assert not any("](javascript" in w.value for w in at.warning), [w.value for w in at.warning]


def test_audit_date_range_round_trip(db: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lib.config import get_settings
    from tests.utils.login import as_role, write_roles

    monkeypatch.setenv("ROLES_FILE", str(write_roles(tmp_path / "roles.toml")))
    get_settings.cache_clear()
    today = utcnow().date()
    first = today - timedelta(days=3)
    at = AppTest.from_file(str(PAGES_DIR / "audit.py"), default_timeout=30)
    at.query_params["aud_dates"] = f"{first}..{today}"
    at.query_params["aud_result"] = "failed"
    at = as_role(at, "admin").run()
    assert not at.exception, at.exception
    assert tuple(at.date_input(key="aud_dates").value) == (first, today)
    assert at.selectbox(key="aud_result").value == "failed"


def test_audit_dates_in_the_future_are_ignored(db: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lib.config import get_settings
    from tests.utils.login import as_role, write_roles

    monkeypatch.setenv("ROLES_FILE", str(write_roles(tmp_path / "roles.toml")))
    get_settings.cache_clear()
    at = AppTest.from_file(str(PAGES_DIR / "audit.py"), default_timeout=30)
    at.query_params["aud_dates"] = "2999-01-01..2999-02-01"
    at = as_role(at, "admin").run()
    assert not at.exception, at.exception
    assert tuple(at.date_input(key="aud_dates").value)[1] == utcnow().date()


# --- customer detail -----------------------------------------------------------------------------------------


def test_back_to_customer_search_keeps_the_search_and_page(crowd: dict[str, list[str]]) -> None:
    """One session of the whole app: the Customers page searched and on page 2, then a customer's page."""
    at = AppTest.from_file(APP, default_timeout=30).run()
    at.switch_page("app_pages/customers.py")
    at.query_params["cust_search"] = "filler"
    at.query_params["cust_page"] = "2"
    at.run()
    assert ids(at) == crowd["fillers"][25:]
    at.switch_page("app_pages/customer_detail.py")
    at.query_params.clear()
    at.query_params["id"] = crowd["fillers"][26]
    at.run()
    assert not at.exception, at.exception
    back = next(p for p in at.get("page_link") if "Back to customer search" in plain(p.proto.label))
    assert dict(parse_qsl(back.proto.query_string)) == {
        "cust_search": "filler", "cust_page": "2"}


def test_back_from_another_page_restores_the_view(crowd: dict[str, list[str]]) -> None:
    """Back from a customer's page: the URL is the one this session wrote, but Streamlit dropped the search
    box's state while the other page was shown."""
    at = AppTest.from_file(APP, default_timeout=30).run()
    at.switch_page("app_pages/customers.py")
    at.query_params["cust_search"] = "filler"
    at.query_params["cust_page"] = "2"
    at.run()
    at.switch_page("app_pages/customer_detail.py")
    at.query_params.clear()
    at.query_params["id"] = crowd["fillers"][26]
    at.run()
    at.switch_page("app_pages/customers.py")
    at.query_params.clear()
    at.query_params["cust_search"] = "filler"
    at.query_params["cust_page"] = "2"
    at.run()
    assert at.text_input(key="cust_search").value == "filler"
    assert ids(at) == crowd["fillers"][25:]


def test_customer_detail_without_an_id_is_a_search_box(crowd: dict[str, list[str]]) -> None:
    at = run_page("customer_detail.py")
    assert not at.exception, at.exception
    assert at.text_input(key="cd_find").label == "Find a customer"


def test_customer_detail_search_finds_by_email(crowd: dict[str, list[str]]) -> None:
    at = run_page("customer_detail.py")
    at.text_input(key="cd_find").input("EURO@example.org").run()
    assert any(f"customer_detail?id={crowd['eur'][0]}" in m.value or f"customer?id={crowd['eur'][0]}" in m.value
               for m in at.markdown)


def test_customer_detail_search_lists_several_matches(crowd: dict[str, list[str]]) -> None:
    at = run_page("customer_detail.py", query={"cd_find": "filler"})
    assert len(ids(at, "cd_found")) == 25
