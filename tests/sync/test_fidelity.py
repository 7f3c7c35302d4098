"""Fidelity: a full sync, then changes and an incremental sync, leave the cache equal to Stripe, field by field."""

from __future__ import annotations

from sqlalchemy import Engine, text

from lib.sync import run_sync
from tests.sync.fidelity import apply_changes, build_account, differences
from tests.utils.sandbox import SandboxServer


def test_full_then_incremental_sync_matches_stripe_field_by_field(db: Engine, sandbox: SandboxServer) -> None:
    client = sandbox.client
    acc = build_account(client)

    result = run_sync(mode="full")
    assert result.status == "succeeded", result.error
    assert result.counts["customers"] == len(acc.customers)
    assert result.counts["subscriptions"] == len(acc.subs)
    assert differences(client, db) == []
    with db.connect() as conn:
        items = conn.execute(text("SELECT COUNT(*) FROM subscription_items WHERE subscription_id = :s"),
                             {"s": acc.big_sub}).scalar()
        lines = conn.execute(text("SELECT MAX(n) FROM (SELECT COUNT(*) AS n FROM invoice_lines "
                                  "GROUP BY invoice_id) AS per_invoice")).scalar()
        same_person = conn.execute(text("SELECT COUNT(*) FROM customers WHERE email_normalized = "
                                        "'zoe.angstrom@example.com'")).scalar()
    # nested lists beyond the 10 Stripe embeds
    assert items == 20
    assert lines == 20
    assert same_person == 2  # emails that differ only in case meet in email_normalized

    apply_changes(client, acc, sandbox)
    result = run_sync(mode="incremental")
    assert result.status == "succeeded", result.error
    # applied from events, no backfill
    assert result.counts["invoices"] > 0
    assert result.notes == []
    assert differences(client, db) == []
    with db.connect() as conn:
        deleted = conn.execute(text("SELECT deleted FROM customers WHERE id = :c"), {"c": acc.customers[3]}).scalar()
        failed = conn.execute(text("SELECT decline_code, next_payment_attempt IS NOT NULL FROM invoices "
                                   "WHERE customer_id = :c AND status = 'open'"), {"c": acc.failing_customer}).one()
        past_due = conn.execute(text("SELECT status FROM subscriptions WHERE customer_id = :c"),
                                {"c": acc.failing_customer}).scalar()
    assert deleted in (True, 1)
    assert tuple(failed) in (("generic_decline", True), ("generic_decline", 1))
    assert past_due == "past_due"
