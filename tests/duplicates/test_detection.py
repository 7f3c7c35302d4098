"""Duplicate detection over the cache: which signals link whom, and which never do."""

from __future__ import annotations

from sqlmodel import Session

from lib.duplicates import detect, filter_clusters, summaries
from tests.duplicates.factory import add_customer, add_invoice, add_subscription


def _clusters(session: Session) -> list[set[str]]:
    return [set(c.customer_ids) for c in detect(session=session).clusters]


def test_email_variants_link_one_mailbox(session: Session) -> None:
    add_customer(session, id="cus_a", email="John.Smith@Gmail.com", name="John Smith")
    add_customer(session, id="cus_b", email=" johnsmith+shop@googlemail.com ", name="J. Smith")
    add_customer(session, id="cus_c", email="john.smith@outlook.com", name="John Smith")
    result = detect(session=session)
    assert [set(c.customer_ids) for c in result.clusters] == [{"cus_a", "cus_b"}]
    cluster = result.clusters[0]
    assert cluster.signals == ["email"]
    assert cluster.evidence[0].value == "johnsmith@gmail.com"
    assert cluster.confidence >= 0.9


def test_phone_formats_and_card_fingerprint_link(session: Session) -> None:
    add_customer(session, id="cus_p1", email="a@one.test", phone="(415) 555-0100", name="Ann Lee")
    add_customer(session, id="cus_p2", email="b@two.test", phone="+1 415 555 0100", name="Ann Lee")
    add_customer(session, id="cus_k1", email="k1@x.test", card="fp_same")
    add_customer(session, id="cus_k2", email="k2@y.test", card="fp_same")
    add_customer(session, id="cus_k3", email="k3@z.test", card="fp_other")
    result = detect(session=session)
    by_members = {frozenset(c.customer_ids): c for c in result.clusters}
    assert set(by_members) == {frozenset({"cus_p1", "cus_p2"}), frozenset({"cus_k1", "cus_k2"})}
    phone = by_members[frozenset({"cus_p1", "cus_p2"})]
    assert set(phone.signals) == {"phone", "name_phone"}  # the agreeing name raises confidence
    assert phone.confidence > by_members[frozenset({"cus_k1", "cus_k2"})].confidence - 0.2
    assert by_members[frozenset({"cus_k1", "cus_k2"})].signals == ["card"]


def test_shared_public_domain_or_similar_name_alone_never_links(session: Session) -> None:
    add_customer(session, email="maria.garcia@gmail.com", name="Maria Garcia")
    add_customer(session, email="mgarcia77@gmail.com", name="Maria Garcia")  # public domain: not evidence
    add_customer(session, email="maria@garcia-design.test", name="Maria Garcia")  # name alone: not evidence
    assert _clusters(session) == []


def test_similar_names_link_at_company_domain_or_same_address(session: Session) -> None:
    add_customer(session, id="cus_d1", email="jsmith@acme-corp.test", name="Jonathan Smith")
    add_customer(session, id="cus_d2", email="jonathan.smith@acme-corp.test", name="Jonathon Smith")
    add_customer(session, id="cus_d3", email="alice@acme-corp.test", name="Alice Wong")  # colleague
    addr = {"line1": "12 Rue de la Paix", "postal_code": "75002", "country": "FR"}
    add_customer(session, id="cus_r1", email="r1@mail.test", name="Élodie Martin", address=addr)
    add_customer(session, id="cus_r2", email="r2@other.test", name="Elodie Martin",
                 address={**addr, "line1": "12 rue de la paix "})
    add_customer(session, id="cus_r3", email="r3@third.test", name="Pierre Martin", address=addr)  # family
    result = detect(session=session)
    by_members = {frozenset(c.customer_ids): c for c in result.clusters}
    assert set(by_members) == {frozenset({"cus_d1", "cus_d2"}), frozenset({"cus_r1", "cus_r2"})}
    assert by_members[frozenset({"cus_d1", "cus_d2"})].signals == ["name_domain"]
    assert by_members[frozenset({"cus_r1", "cus_r2"})].signals == ["name_address"]
    ev = by_members[frozenset({"cus_d1", "cus_d2"})].evidence[0]
    assert ev.value == "acme-corp.test"
    assert ev.score is not None
    assert ev.score >= 88


def test_transitive_cluster_with_evidence_and_weakest_link(session: Session) -> None:
    add_customer(session, id="cus_1", email="pat@example.org", card="fp_pat")
    add_customer(session, id="cus_2", email="PAT@example.org", phone="+44 20 7946 0018")
    add_customer(session, id="cus_3", email="patricia@work.test", phone="+44 (20) 7946-0018")
    add_customer(session, id="cus_4", email="other@work.test", card="fp_pat")
    result = detect(session=session)
    assert len(result.clusters) == 1
    cluster = result.clusters[0]
    assert cluster.customer_ids == ["cus_1", "cus_2", "cus_3", "cus_4"]
    linked = {(e.a, e.b, e.signal) for e in cluster.evidence}
    assert ("cus_1", "cus_2", "email") in linked
    assert ("cus_1", "cus_4", "card") in linked
    assert ("cus_2", "cus_3", "phone") in linked
    assert cluster.confidence == 0.75  # the weakest link: cus_3 hangs on the phone alone
    assert filter_clusters(result.clusters, signals=["email"]) == [cluster]
    assert filter_clusters(result.clusters, signals=["name_address"]) == []
    assert filter_clusters(result.clusters, min_confidence=0.99) == []


def test_deleted_and_already_merged_customers_are_skipped(session: Session) -> None:
    add_customer(session, id="cus_live", email="sam@ex.test")
    add_customer(session, id="cus_gone", email="sam@ex.test", deleted=True)
    add_customer(session, id="cus_done", email="sam@ex.test", metadata={"merged_into": "cus_live"})
    assert _clusters(session) == []


def test_summaries_side_by_side(session: Session) -> None:
    add_customer(session, id="cus_s1", email="x@y.test", mrr=2500)
    add_subscription(session, "cus_s1", status="active")
    add_subscription(session, "cus_s1", status="canceled")
    add_invoice(session, "cus_s1", status="open", amount=700)
    add_invoice(session, "cus_s1", status="paid", amount=300)
    add_customer(session, id="cus_s2", email="x@y.test")
    got = summaries(["cus_s1", "cus_s2", "cus_missing"], session=session)
    assert set(got) == {"cus_s1", "cus_s2"}
    assert (got["cus_s1"].live_subscriptions, got["cus_s1"].unpaid_invoices, got["cus_s1"].unpaid_amount) == (1, 1, 700)
    assert got["cus_s1"].mrr == 2500
    assert got["cus_s2"].live_subscriptions == 0
    assert got["cus_s1"].last_activity > got["cus_s2"].last_activity


def test_a_card_or_phone_shared_by_many_is_not_evidence(session: Session) -> None:
    for n in range(6):  # e.g. Stripe's decline test card, or a company card used by six colleagues
        add_customer(session, id=f"cus_many{n}", email=f"m{n}@x{n}.test", card="fp_test_card",
                     phone="+1 212 555 0199")
    add_customer(session, id="cus_pair1", email="p1@a.test", card="fp_pair")
    add_customer(session, id="cus_pair2", email="p2@b.test", card="fp_pair")
    result = detect(session=session)
    assert [c.customer_ids for c in result.clusters] == [["cus_pair1", "cus_pair2"]]
    assert result.counts["card_shared_skipped"] == 1
    assert result.counts["phone_shared_skipped"] == 1


def test_regional_mail_providers_count_as_public() -> None:
    from lib.duplicates import is_public_domain

    for domain in ("gmail.com", "hotmail.es", "yahoo.co.in", "docomo.ne.jp", "bol.com.br", "web.de", "mail.ru"):
        assert is_public_domain(domain), domain
    for domain in ("acme.com", "acme.co.uk", "mail.acme.com", "garcia-design.test"):
        assert not is_public_domain(domain), domain
