"""The demo seeder: a believable, deterministic account with planted duplicates, through the SDK only.

Each test seeds a small account (40 customers) into the worker's sandbox process and reads it back with the
official SDK, as the dashboard's sync would.
"""

from __future__ import annotations

import json
import unicodedata
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
import stripe

from lib.normalize import canonical_email, normalize_phone
from sandbox import seed
from tests.utils.sandbox import SandboxServer

N = 40


def _run_seed(server: SandboxServer, tmp_path: Path, seed_value: int = 7) -> dict[str, Any]:
    truth = tmp_path / f"truth-{seed_value}.json"
    code = seed.main(["--api-base", server.url, "--api-key", server.key, "--customers", str(N),
                      "--seed", str(seed_value), "--reset", "--webhook-url", "none", "--truth-file", str(truth)])
    assert code == 0
    return json.loads(truth.read_text())


def _customers(client: stripe.StripeClient) -> list[stripe.Customer]:
    return list(client.v1.customers.list({"limit": 100}).auto_paging_iter())


def _failure(client: stripe.StripeClient, invoice: stripe.Invoice) -> dict[str, Any] | None:
    """The last payment error of an invoice, through its invoice payments → payment intent."""
    for ip in client.v1.invoice_payments.list({"invoice": invoice.id}).auto_paging_iter():
        pi_id = ip.payment.payment_intent
        pi_id = pi_id if isinstance(pi_id, str) else pi_id.id
        err = client.v1.payment_intents.retrieve(pi_id).last_payment_error
        if err is not None:
            return err.to_dict()
    return None


def _snapshot(client: stripe.StripeClient) -> list[tuple]:
    """Everything a user sees of the account, without ids and absolute times."""
    subs_by_customer: dict[str, list[tuple]] = defaultdict(list)
    for sub in client.v1.subscriptions.list({"status": "all", "limit": 100}).auto_paging_iter():
        items = sorted((i.price.lookup_key, i.price.unit_amount, i.quantity) for i in sub["items"].data)
        subs_by_customer[sub.customer].append((sub.status, tuple(items), sub.cancel_at_period_end))
    invoices_by_customer: dict[str, list[tuple]] = defaultdict(list)
    for inv in client.v1.invoices.list({"limit": 100}).auto_paging_iter():
        invoices_by_customer[inv.customer].append((inv.status, inv.amount_due, inv.amount_paid, inv.attempt_count))
    rows = []
    for c in _customers(client):
        pms = client.v1.payment_methods.list({"customer": c.id, "type": "card"}).data
        rows.append((c.name, c.email, c.phone, json.dumps(c.address.to_dict(), sort_keys=True),
                     tuple(c.preferred_locales), json.dumps(c.metadata.to_dict(), sort_keys=True), c.balance,
                     tuple(sorted(pm.card.fingerprint for pm in pms)),
                     tuple(sorted(subs_by_customer[c.id])), tuple(sorted(invoices_by_customer[c.id]))))
    return sorted(rows, key=repr)


def test_same_seed_gives_the_same_account_and_another_seed_another(sandbox: SandboxServer, tmp_path: Path) -> None:
    _run_seed(sandbox, tmp_path)
    first = _snapshot(sandbox.client)
    _run_seed(sandbox, tmp_path)
    second = _snapshot(sandbox.client)
    assert len(first) == N
    assert first == second
    _run_seed(sandbox, tmp_path, seed_value=8)
    assert _snapshot(sandbox.client) != first


def test_seeded_account_has_every_status_declines_and_the_planted_duplicates(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    truth = _run_seed(sandbox, tmp_path)
    client = sandbox.client
    customers = {c.id: c for c in _customers(client)}
    assert len(customers) == N

    # a year of history, ending now
    now = sandbox.now()
    created = sorted(c.created for c in customers.values())
    assert created[0] < now - 200 * 86400
    assert created[-1] > now - 3 * 86400

    # every subscription status, one subscription per customer
    subs = list(client.v1.subscriptions.list({"status": "all", "limit": 100}).auto_paging_iter())
    assert len(subs) == N
    assert {s.customer for s in subs} == set(customers)
    assert {s.status for s in subs} == set(seed.STATUSES)
    assert {s.currency for s in subs} >= {"usd", "eur"}
    assert {s["items"].data[0].price.recurring.interval for s in subs} == {"month", "year"}

    # failed payments: several decline codes, of different ages, some still being retried
    failed = [inv for status in ("open", "uncollectible")
              for inv in client.v1.invoices.list({"status": status, "limit": 100}).auto_paging_iter()
              if inv.attempt_count > 0]
    declines = Counter((_failure(client, inv) or {}).get("decline_code") for inv in failed)
    assert None not in declines
    assert len(declines) >= 3, declines
    ages = [(now - inv.created) / 86400 for inv in failed]
    assert min(ages) < 7 < 30 < max(ages)
    assert any(inv.next_payment_attempt for inv in failed)
    paid = list(client.v1.invoices.list({"status": "paid", "limit": 100}).auto_paging_iter())
    assert len(paid) > N  # renewals over the year, not just first invoices

    # planted duplicates: about 5%, each cluster linked by its signal, and nothing else linked by accident
    clusters, signals = truth["clusters"], truth["signals"]
    assert set(signals) == set(seed.SIGNALS)
    assert sum(len(c) - 1 for c in clusters) == 5
    fingerprints = {cid: {pm.card.fingerprint: pm.card.last4 for pm in
                          client.v1.payment_methods.list({"customer": cid, "type": "card"}).data}
                    for cid in customers}
    for members, signal in zip(clusters, signals, strict=True):
        people = [customers[cid] for cid in members]
        if signal.startswith("email") or signal == "gmail_dots":
            assert len({canonical_email(p.email) for p in people}) == 1, [p.email for p in people]
            assert len({p.email for p in people}) == len(people)  # written differently each time
        elif signal == "phone":
            assert len({normalize_phone(p.phone) for p in people}) == 1, [p.phone for p in people]
            assert len({p.phone for p in people}) == len(people)
            assert len({canonical_email(p.email) for p in people}) == len(people)
        else:
            shared = set.intersection(*(set(fingerprints[p.id]) for p in people))
            assert shared, "card duplicates share a card fingerprint"
            assert len({canonical_email(p.email) for p in people}) == len(people)
    cluster_of = {cid: k for k, members in enumerate(clusters) for cid in members}
    decline_last4 = {n[-4:] for n in seed.DECLINE_CARDS.values()}

    def links(key: dict[str, Any]) -> list[set[str]]:
        groups: dict[Any, set[str]] = defaultdict(set)
        for cid, value in key.items():
            for v in value if isinstance(value, set) else {value}:
                if v:
                    groups[v].add(cid)
        return [g for g in groups.values() if len({cluster_of.get(cid, cid) for cid in g}) > 1]

    assert links({cid: canonical_email(c.email) for cid, c in customers.items()}) == []
    assert links({cid: normalize_phone(c.phone) for cid, c in customers.items()}) == []
    for group in links({cid: set(fps) for cid, fps in fingerprints.items()}):  # only Stripe's decline test cards
        fp = set.intersection(*(set(fingerprints[cid]) for cid in group))
        assert {fingerprints[next(iter(group))][f] for f in fp} <= decline_last4

    # the answer key is not in Stripe
    for c in customers.values():
        assert set(c.metadata.to_dict()) <= {"signup_source", "app_user_id"}
    for s in subs:
        assert set(s.metadata.to_dict()) <= {"plan"}


def test_portal_configuration_and_webhook_endpoint_are_created(sandbox: SandboxServer, tmp_path: Path) -> None:
    code = seed.main(["--api-base", sandbox.url, "--api-key", sandbox.key, "--customers", "12", "--reset",
                      "--webhook-url", "http://127.0.0.1:9/webhooks/stripe"])
    assert code == 0
    client = sandbox.client
    endpoints = client.v1.webhook_endpoints.list().data
    assert [e.url for e in endpoints] == ["http://127.0.0.1:9/webhooks/stripe"]
    customer = client.v1.customers.list({"limit": 1}).data[0]
    session = client.v1.billing_portal.sessions.create({"customer": customer.id,
                                                        "return_url": "http://localhost:8501/"})
    assert session.url


def test_seed_refuses_a_sandbox_that_already_holds_data(sandbox: SandboxServer, capsys: pytest.CaptureFixture) -> None:
    sandbox.client.v1.customers.create({"email": "someone@example.com"})
    code = seed.main(["--api-base", sandbox.url, "--api-key", sandbox.key, "--customers", "12",
                      "--webhook-url", "none"])
    assert code == 1
    err = capsys.readouterr().err
    assert "empty sandbox" in err
    assert "--reset" in err
    assert [c.email for c in _customers(sandbox.client)] == ["someone@example.com"]


def test_plan_speaks_several_scripts_and_languages() -> None:
    p = seed.plan(2000, 7, end=1_790_000_000)
    names = [c.person.name for c in p.customers]

    def script(name: str) -> set[str]:
        return {unicodedata.name(ch).split()[0] for ch in name if ch.isalpha()}

    scripts = set().union(*(script(n) for n in names))
    assert {"LATIN", "CYRILLIC", "GREEK", "CJK", "ARABIC", "HANGUL"} <= scripts
    assert any(unicodedata.normalize("NFKD", n) != n for n in names if script(n) == {"LATIN"})  # accents
    locales = Counter(loc for c in p.customers for loc in c.person.locales)
    assert {"en-US", "fr", "de", "es", "ja", "ru", "ar", "el", "zh"} <= set(locales)
    assert {c.person.currency for c in p.customers} == {"usd", "eur", "gbp"}
    assert sum(1 for c in p.customers if c.cluster is not None) - len(p.clusters) == 100  # 5% of 2000
