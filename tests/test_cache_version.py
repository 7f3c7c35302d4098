"""The cache's change stamp moves with every write the pages must see, and is read at most once per MAX_AGE."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlmodel import Session

from lib import cache_version, followups
from lib.models import AuditLog, StripeEvent, SyncRun, SyncState, utcnow
from lib.queries import FailedFilters, customers, failed
from tests.utils.factories import make_customer, make_failed_invoice


def test_a_follow_up_changes_the_stamp(session: Session, db_url: str) -> None:
    invoice = make_failed_invoice(session, make_customer(session))
    before = cache_version.read_generation(db_url)
    followups.set_followup(session=session, invoice_id=invoice.id, status="contacted", note="called",
                           actor="fran@corp.test")
    assert cache_version.read_generation(db_url) != before


def test_a_sync_page_changes_the_stamp(session: Session, db_url: str) -> None:
    before = cache_version.read_generation(db_url)
    session.add(SyncState(resource="customers", updated_at=utcnow()))
    session.commit()
    assert cache_version.read_generation(db_url) != before


def test_a_finished_sync_run_changes_the_stamp(session: Session, db_url: str) -> None:
    run = SyncRun(mode="incremental")
    session.add(run)
    session.commit()
    before = cache_version.read_generation(db_url)
    run.status, run.finished_at = "succeeded", utcnow()
    session.add(run)
    session.commit()
    assert cache_version.read_generation(db_url) != before


def test_a_webhook_event_changes_the_stamp(session: Session, db_url: str) -> None:
    before = cache_version.read_generation(db_url)
    session.add(StripeEvent(id="evt_1", type="customer.updated", created=utcnow(), object_id="cus_1"))
    session.commit()
    assert cache_version.read_generation(db_url) != before


def test_the_stamp_is_reused_within_max_age_and_read_again_after(session: Session, db: Engine, db_url: str) -> None:
    cache_version.forget()
    now = [100.0]
    first = cache_version.generation(db_url, clock=lambda: now[0])
    session.add(AuditLog(actor="a@corp.test", action="portal_link", result="succeeded"))
    session.commit()
    now[0] += cache_version.MAX_AGE / 2
    assert cache_version.generation(db_url, clock=lambda: now[0]) == first
    now[0] += cache_version.MAX_AGE
    assert cache_version.generation(db_url, clock=lambda: now[0]) != first


def test_a_follow_up_keeps_synced_only_results_and_renews_the_worklist(session: Session, db_url: str) -> None:
    invoice = make_failed_invoice(session, make_customer(session))
    before = cache_version.read_generation(db_url)
    followups.set_followup(session=session, invoice_id=invoice.id, status="promised", note="Friday",
                           actor="fran@corp.test")
    after = cache_version.read_generation(db_url)
    assert cache_version.key_for(customers.search_customers, after) == cache_version.key_for(
        customers.search_customers, before)
    assert cache_version.key_for(failed.failed_invoices, after) != cache_version.key_for(
        failed.failed_invoices, before)


def test_a_follow_up_keeps_the_failed_summary_unless_it_is_filtered_by_follow_up(session: Session,
                                                                                 db_url: str) -> None:
    invoice = make_failed_invoice(session, make_customer(session))
    before = cache_version.read_generation(db_url)
    followups.set_followup(session=session, invoice_id=invoice.id, status="promised", note="Friday",
                           actor="fran@corp.test")
    after = cache_version.read_generation(db_url)
    plain = {"filters": FailedFilters(currency="usd")}
    by_followup = {"filters": FailedFilters(followup="promised")}
    at_risk = failed.at_risk_by_currency
    assert cache_version.key_for(at_risk, after, plain) == cache_version.key_for(at_risk, before, plain)
    assert cache_version.key_for(at_risk, after, by_followup) != cache_version.key_for(at_risk, before, by_followup)


def test_summary_queries_join_follow_ups_only_through_the_follow_up_filter() -> None:
    import inspect
    import pkgutil

    assert "if f is None or f.followup:" in inspect.getsource(failed._failed_from)
    for name in sorted(cache_version.SYNCED_UNLESS_FOLLOWUP_FILTER):
        source = inspect.getsource(pkgutil.resolve_name(name))
        assert "_failed_from(" in source, name
        assert "Followup" not in source, name


def test_synced_only_names_are_queries_that_read_no_dashboard_written_table() -> None:
    import inspect
    import pkgutil

    for name in sorted(cache_version.SYNCED_ONLY):
        source = inspect.getsource(pkgutil.resolve_name(name))
        assert not any(word in source for word in ("Followup", "AuditLog", "MergeJob", "_failed_where")), name
