"""The demo account shows recovery that can be measured: after the seed and a full sync, some failed invoices
were paid later, and the recovery rate the page reads (lib/queries.recovery) equals the ratio computed from
Stripe's own invoices, per currency and month of failure."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from lib import queries
from lib.sync import run_sync
from sandbox import seed
from tests.utils.sandbox import SandboxServer


def _month(ts: int) -> date:
    return datetime.fromtimestamp(ts, UTC).date().replace(day=1)


@pytest.fixture
def seeded(sandbox: SandboxServer, db: Engine) -> SandboxServer:
    code = seed.main(["--api-base", sandbox.url, "--api-key", sandbox.key, "--customers", "40", "--seed", "7",
                      "--reset", "--webhook-url", "none"])
    assert code == 0
    result = run_sync(mode="full")
    assert result.status == "succeeded", result.error
    return sandbox


def _cohorts_from_stripe(server: SandboxServer, now: int) -> dict[tuple[str, date], tuple[int, int]]:
    """(currency, month of failure) → (failed, recovered) from the invoices Stripe lists: an invoice failed if it
    is open/uncollectible after an attempt or paid after more than one; recovered: paid after more than one."""
    first = _month(now)
    first = date(first.year - (1 if first.month < 12 else 0), first.month % 12 + 1, 1)  # 11 months back
    out: dict[tuple[str, date], list[int]] = defaultdict(lambda: [0, 0])
    for inv in server.client.v1.invoices.list({"limit": 100}).auto_paging_iter():
        still_failed = inv.status in ("open", "uncollectible") and inv.attempt_count > 0
        recovered = inv.status == "paid" and inv.attempt_count > 1
        if not (still_failed or recovered) or _month(inv.created) < first:
            continue
        acc = out[(inv.currency, _month(inv.created))]
        acc[0] += inv.amount_due
        acc[1] += inv.amount_paid if recovered else 0
    return {k: (f, r) for k, (f, r) in out.items()}


def test_seeded_account_recovers_some_failures_and_the_rate_matches_stripe(seeded: SandboxServer,
                                                                           session: Session) -> None:
    now = seeded.now()
    expected = _cohorts_from_stripe(seeded, now)
    rec = queries.recovery(session=session, now=datetime.fromtimestamp(now, UTC))
    got = {(m["currency"], m["month"]): (m["failed"], m["recovered"]) for m in rec.monthly}
    assert got == expected
    recovered = sum(r for _, r in expected.values())
    assert recovered > 0, "the seed recovers some failed invoices"
    for r in rec.rates:
        failed = sum(f for (c, _), (f, _) in expected.items() if c == r["currency"])
        back = sum(x for (c, _), (_, x) in expected.items() if c == r["currency"])
        assert r["rate"] == pytest.approx(back / failed)
    assert any(r["rate"] for r in rec.rates), "a non-zero recovery rate in some currency"
    assert {r["kind"] for r in rec.weekly} == {"failed", "recovered"}
