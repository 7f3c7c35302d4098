"""Find customers that are the same person, with the evidence for each link and a confidence score.

SQL does the heavy lifting: GROUP BY on the indexed normal forms (`email_canonical`, `phone_normalized`,
`payment_methods.card_fingerprint`) finds candidate groups in one pass over an index, so a million
customers never meet pairwise in Python. Names are only compared inside small candidate groups that
already share something else (a company email domain or a postal address), because a similar name alone
is not evidence — and a shared public mail domain (gmail.com …) never links anyone.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, Literal

from rapidfuzz import fuzz, process
from rapidfuzz.utils import default_process
from sqlalchemy import func, literal_column, select
from sqlmodel import Session, col

from lib.models import Customer, Invoice, PaymentMethod, Subscription, utcnow

# What two customers can share that links them (an exact value, or a similar name on top of something shared).
Signal = Literal["email", "card", "phone", "name_address", "name_domain", "name_phone"]
# How much one signal alone says that two customers are one person (0..1); combined as 1 - Π(1 - w).
WEIGHTS: dict[Signal, float] = {
    "email": 0.95,  # same mailbox after normalisation
    "card": 0.90,  # the same physical card (Stripe's fingerprint)
    "phone": 0.75,  # same E.164 number (households and switchboards share numbers)
    "name_address": 0.70,  # similar names at the same postal address
    "name_domain": 0.60,  # similar names at the same company (non-public) email domain
    "name_phone": 0.50,  # similar names on top of a shared phone: only ever adds to "phone"
}
SIGNAL_LABELS: dict[Signal, str] = {
    "email": "Same email (normalised)",
    "card": "Same card fingerprint",
    "phone": "Same phone (E.164)",
    "name_address": "Similar name + same address",
    "name_domain": "Similar name + same company email domain",
    "name_phone": "Similar name + same phone",
}
# A card or phone shared by more customers than this is shared by design (Stripe's test cards, a company card,
# a switchboard): like a public mail domain, it says nothing about two customers being one person.
MAX_SHARED: dict[str, int] = {"card": 4, "phone": 5}
NAME_THRESHOLD = 88.0  # rapidfuzz token_sort_ratio (0..100) above which two names count as similar
MAX_ALL_PAIRS = 60  # larger name groups are compared with rapidfuzz's vectorised cdist

# Mail providers anyone can sign up at: sharing one says nothing about two people being one. Providers run
# many country domains (yahoo.co.jp, hotmail.es, gmx.at…), so the name before the suffix is what counts.
PUBLIC_EMAIL_DOMAINS = frozenset({
    "gmail.com", "googlemail.com", "me.com", "mac.com", "pm.me", "proton.me", "hey.com", "example.com",
    "example.org", "example.net", "i.softbank.jp",
})
PUBLIC_MAIL_PROVIDERS = frozenset({
    # global webmail
    "gmail", "googlemail", "yahoo", "ymail", "rocketmail", "hotmail", "outlook", "live", "msn", "windowslive",
    "icloud", "aol", "aim", "protonmail", "proton", "tutanota", "tuta", "zoho", "zohomail", "fastmail",
    "mail", "email", "inbox", "gmx", "yandex", "ya", "posteo", "mailbox", "hushmail", "lycos", "excite",
    # Europe
    "web", "t-online", "freenet", "arcor", "online", "orange", "wanadoo", "free", "sfr", "neuf", "laposte",
    "bbox", "libero", "virgilio", "alice", "tiscali", "tin", "fastwebnet", "telefonica", "movistar", "terra",
    "btinternet", "btopenworld", "sky", "virginmedia", "talktalk", "ntlworld", "blueyonder", "bluewin",
    "hispeed", "sunrise", "telenet", "skynet", "ziggo", "kpnmail", "xs4all", "planet", "hetnet", "chello",
    "sapo", "telia", "otenet", "seznam", "centrum", "atlas", "wp", "onet", "o2", "interia", "op", "poczta",
    "rambler", "list", "bk", "ukr", "abv", "freemail", "citromail", "mail2world",
    # Americas, Asia, Pacific, Middle East
    "comcast", "verizon", "att", "sbcglobal", "bellsouth", "cox", "charter", "earthlink", "juno", "netzero",
    "shaw", "rogers", "sympatico", "videotron", "bigpond", "optusnet", "iinet", "xtra", "bol", "uol", "ig",
    "prodigy", "qq", "foxmail", "163", "126", "yeah", "sina", "sohu", "aliyun", "naver", "daum", "hanmail",
    "nate", "docomo", "ezweb", "au", "softbank", "rediffmail", "sify", "eim", "emirates",
})
_SUFFIX_LABELS = frozenset({"com", "co", "net", "org", "ne", "or", "ac", "gov", "edu"})


def is_public_domain(domain: str | None) -> bool:
    """True for a mail provider anyone can use (gmail.com, hotmail.es, yahoo.co.in, docomo.ne.jp…)."""
    if not domain:
        return True
    domain = domain.strip().lower()
    if domain in PUBLIC_EMAIL_DOMAINS:
        return True
    labels = domain.split(".")
    if len(labels) > 2 and labels[-2] in _SUFFIX_LABELS:  # a country's second level: co.uk, com.br, ne.jp
        labels = labels[:-1]
    return (labels[-2] if len(labels) >= 2 else labels[0]) in PUBLIC_MAIL_PROVIDERS


@dataclass(frozen=True)
class Evidence:
    """One reason two customers were linked: the signal and the value they share."""

    a: str
    b: str
    signal: Signal
    value: str
    score: float | None = None  # name similarity (0..100) for name_* signals


@dataclass
class Cluster:
    """Customers believed to be one person; `confidence` is its weakest link (0..1)."""

    id: str
    customer_ids: list[str]
    confidence: float
    signals: list[Signal]
    evidence: list[Evidence] = field(default_factory=list)


@dataclass
class DetectionResult:
    clusters: list[Cluster]
    customers_linked: int
    seconds: float
    scanned_at: datetime
    counts: dict[str, int] = field(default_factory=dict)  # candidate groups per signal


# --- small helpers ----------------------------------------------------------------------------


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        parent = self.parent
        root = parent.setdefault(x, x)
        while root != parent[root]:
            root = parent[root]
        while x != root:  # path compression
            parent[x], x = root, parent[x]
        return root

    def union(self, a: str, b: str) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        if rb < ra:
            ra, rb = rb, ra
        self.parent[rb] = ra
        return True


def combine(signals: Iterable[Signal]) -> float:
    """The probability-style union of independent signals: 1 - Π(1 - w)."""
    miss = 1.0
    for s in set(signals):
        miss *= 1.0 - WEIGHTS[s]
    return round(1.0 - miss, 4)


def _grouped(rows: Iterable[tuple[Any, ...]]) -> Iterator[tuple[Any, list[tuple[Any, ...]]]]:
    """Consecutive rows with the same first column, as (key, rows): the SQL already ordered them."""
    key: Any = object()
    bucket: list[tuple[Any, ...]] = []
    for row in rows:
        if row[0] != key:
            if bucket:
                yield key, bucket
            key, bucket = row[0], []
        bucket.append(row)
    if bucket:
        yield key, bucket


def _similar_pairs(members: list[tuple[str, str | None]]) -> Iterator[tuple[str, str, float]]:
    """Pairs (id_a, id_b, score) among (id, name) whose names are similar enough."""
    named = [(cid, name) for cid, name in members if name and len(name.strip()) >= 3]
    if len(named) < 2:
        return
    if len(named) <= MAX_ALL_PAIRS:
        names = [default_process(n) for _, n in named]
        for i in range(len(named)):
            for j in range(i + 1, len(named)):
                score = fuzz.token_sort_ratio(names[i], names[j])
                if score >= NAME_THRESHOLD:
                    yield named[i][0], named[j][0], score
        return
    names = [n for _, n in named]
    matrix = process.cdist(names, names, scorer=fuzz.token_sort_ratio, processor=default_process,
                           score_cutoff=NAME_THRESHOLD, workers=1)
    for i, j in zip(*matrix.nonzero(), strict=True):
        if i < j:
            yield named[i][0], named[j][0], float(matrix[i, j])


# --- the SQL candidate queries ----------------------------------------------------------------


def _stream(session: Session, stmt: Any) -> Iterable[Any]:
    """Rows as they come: a server-side cursor on PostgreSQL; SQLite's cursor is lazy already (and its
    emulated `yield_per` is slower)."""
    if session.get_bind().dialect.name == "postgresql":
        return session.execute(stmt.execution_options(yield_per=5000))
    return session.execute(stmt)


def _merged_into() -> Any:
    """The `merged_into` metadata value: customers already merged away are not candidates any more."""
    return col(Customer.metadata_)["merged_into"].as_string()


def _key_groups(session: Session, column: Any) -> Iterator[tuple[str, list[tuple[str, str | None]]]]:
    """(value, [(customer_id, name_search)]) for every value of an indexed customer column shared by 2+.

    The inner GROUP BY reads only the index; deleted and already-merged customers are dropped after.
    """
    shared = (
        select(column.label("k")).where(column.is_not(None)).group_by(column)
        .having(func.count() > 1).subquery()
    )
    stmt = (
        select(column, col(Customer.id), col(Customer.name_search))
        .join(shared, column == shared.c.k)
        .where(col(Customer.deleted).is_(False), _merged_into().is_(None))
        .order_by(column, col(Customer.id))
    )
    for key, rows in _grouped(_stream(session, stmt)):
        members = [(r[1], r[2]) for r in rows]
        if len(members) > 1:
            yield key, members


def _card_groups(session: Session) -> Iterator[tuple[str, list[tuple[str, str | None]]]]:
    fp = col(PaymentMethod.card_fingerprint)
    owner = col(PaymentMethod.customer_id)
    shared = (
        select(fp.label("k")).where(fp.is_not(None), owner.is_not(None)).group_by(fp)
        .having(func.count(owner.distinct()) > 1).subquery()
    )
    stmt = (
        select(fp, col(Customer.id), col(Customer.name_search))
        .join(shared, fp == shared.c.k)
        .join(Customer, col(Customer.id) == owner)
        .where(col(Customer.deleted).is_(False), _merged_into().is_(None))
        .distinct()
        .order_by(fp, col(Customer.id))
    )
    for key, rows in _grouped(_stream(session, stmt)):
        members = [(r[1], r[2]) for r in rows]
        if len(members) > 1:
            yield key, members


def _domain_expr(session: Session) -> Any:
    email = col(Customer.email_canonical)
    if session.get_bind().dialect.name == "postgresql":
        return func.split_part(email, literal_column("'@'"), 2)
    return func.substr(email, func.instr(email, "@") + 1)


def _domain_groups(session: Session) -> Iterator[tuple[str, list[tuple[str, str | None]]]]:
    """Customers at the same non-public email domain (only those with a name to compare).

    One sorted pass, grouped while streaming: cheaper than GROUP BY + a join back on the computed domain."""
    domain = _domain_expr(session).label("k")
    public = lru_cache(maxsize=None)(is_public_domain)
    stmt = (
        select(domain, col(Customer.id), col(Customer.name_search))
        .where(col(Customer.email_canonical).is_not(None), col(Customer.name_search).is_not(None),
               col(Customer.deleted).is_(False), _merged_into().is_(None))
        .order_by(domain, col(Customer.id))
    )
    rows = (r for r in _stream(session, stmt) if r[0] and not public(r[0]))
    for key, group in _grouped(rows):
        if len(group) > 1:
            yield key, [(r[1], r[2]) for r in group]


def _address_groups(session: Session) -> Iterator[tuple[str, list[tuple[str, str | None]]]]:
    """Customers at the same street line + postal code (case-insensitive), in one sorted pass."""
    addr = col(Customer.address)
    line1 = addr["line1"].as_string()
    key = (func.lower(func.trim(line1)) + "|" + func.coalesce(
        func.upper(func.replace(addr["postal_code"].as_string(), " ", "")), "")).label("k")
    stmt = (
        select(key, col(Customer.id), col(Customer.name_search))
        .where(line1.is_not(None), line1 != "", col(Customer.name_search).is_not(None),
               col(Customer.deleted).is_(False), _merged_into().is_(None))
        .order_by(key, col(Customer.id))
    )
    for k, rows in _grouped(_stream(session, stmt)):
        if len(rows) > 1 and k and not k.startswith("|"):
            yield k, [(r[1], r[2]) for r in rows]


# --- detection --------------------------------------------------------------------------------


def detect(*, session: Session) -> DetectionResult:
    """Scan the cache and return clusters of likely duplicates, most confident first."""
    started = time.perf_counter()
    pair_signals: dict[tuple[str, str], set[Signal]] = defaultdict(set)
    evidence: dict[tuple[str, str], list[Evidence]] = defaultdict(list)
    counts: dict[str, int] = defaultdict(int)

    def link(a: str, b: str, signal: Signal, value: str, score: float | None = None) -> None:
        pair = (a, b) if a < b else (b, a)
        if signal not in pair_signals[pair]:
            pair_signals[pair].add(signal)
            evidence[pair].append(Evidence(pair[0], pair[1], signal, value, score))

    # Exact signals: link every member to the group's first (smallest id) — a star is enough for
    # union-find, and the same centre across signals lets a pair collect all the signals it shares.
    phone_groups: list[tuple[str, list[tuple[str, str | None]]]] = []
    exact: tuple[tuple[Signal, Iterator[tuple[str, list[tuple[str, str | None]]]]], ...] = (
        ("email", _key_groups(session, Customer.email_canonical)),
        ("phone", _key_groups(session, Customer.phone_normalized)),
        ("card", _card_groups(session)),
    )
    for signal, groups in exact:
        for value, members in groups:
            if len(members) > MAX_SHARED.get(signal, len(members)):
                counts[f"{signal}_shared_skipped"] += 1
                continue
            counts[signal] += 1
            centre = members[0][0]
            for cid, _ in members[1:]:
                link(centre, cid, signal, value)
            if signal == "phone":
                phone_groups.append((value, members))

    # Names only count where something else already agrees.
    for value, members in phone_groups:
        for a, b, score in _similar_pairs(members):
            link(a, b, "name_phone", value, score)
    by_name: tuple[tuple[Signal, Iterator[tuple[str, list[tuple[str, str | None]]]]], ...] = (
        ("name_domain", _domain_groups(session)), ("name_address", _address_groups(session)))
    for signal, groups in by_name:
        for value, members in groups:
            counts[signal] += 1
            for a, b, score in _similar_pairs(members):
                link(a, b, signal, value, score)

    # Maximum spanning forest (Kruskal, strongest pairs first): a cluster's confidence is its
    # weakest accepted link, i.e. how sure we are that every member belongs.
    scored = sorted(((combine(sigs), pair) for pair, sigs in pair_signals.items()
                     if sigs != {"name_phone"}), reverse=True)
    uf = _UnionFind()
    weakest: dict[str, float] = {}
    for score, (a, b) in scored:
        ra, rb = uf.find(a), uf.find(b)
        if ra == rb:
            continue
        low = min(score, weakest.pop(ra, 1.0), weakest.pop(rb, 1.0))
        uf.union(a, b)
        weakest[uf.find(a)] = low

    members_of: dict[str, list[str]] = defaultdict(list)
    for cid in uf.parent:
        members_of[uf.find(cid)].append(cid)
    ev_of: dict[str, list[Evidence]] = defaultdict(list)
    for pair, evs in evidence.items():
        if pair[0] in uf.parent:
            ev_of[uf.find(pair[0])].extend(evs)

    clusters = []
    for root, ids in members_of.items():
        evs = ev_of[root]
        clusters.append(Cluster(
            id=root, customer_ids=sorted(ids), confidence=weakest.get(root, 0.0),
            signals=sorted({e.signal for e in evs}), evidence=evs,
        ))
    clusters.sort(key=lambda c: (-c.confidence, -len(c.customer_ids), c.id))
    return DetectionResult(
        clusters=clusters, customers_linked=len(uf.parent), seconds=round(time.perf_counter() - started, 3),
        scanned_at=utcnow(), counts=dict(counts),
    )


def filter_clusters(
    clusters: list[Cluster], *, signals: Iterable[str] | None = None, min_confidence: float = 0.0,
) -> list[Cluster]:
    """Clusters with at least one of `signals` (all when None) and confidence ≥ `min_confidence`."""
    wanted = set(signals) if signals else None
    return [c for c in clusters if c.confidence >= min_confidence and (wanted is None or wanted & set(c.signals))]


def without_merged(clusters: list[Cluster], merged: set[str]) -> list[Cluster]:
    """Clusters as they stand once `merged` customers are gone (merged away since the scan): those members and
    their evidence removed, and clusters left with fewer than two members dropped. The confidence stays the
    scan's (a lower bound: the weakest link may have been the one removed). No Re-scan needed."""
    if not merged:
        return clusters
    out = []
    for c in clusters:
        if not merged.intersection(c.customer_ids):
            out.append(c)
            continue
        left = [cid for cid in c.customer_ids if cid not in merged]
        if len(left) < 2:
            continue
        evidence = [e for e in c.evidence if e.a not in merged and e.b not in merged]
        out.append(Cluster(id=c.id, customer_ids=left, confidence=c.confidence,
                           signals=sorted({e.signal for e in evidence}), evidence=evidence))
    return out


def clusters_of(clusters: list[Cluster], customer_ids: Iterable[str]) -> list[Cluster]:
    """The clusters that hold any of `customer_ids`, in their order."""
    wanted = set(customer_ids)
    return [c for c in clusters if wanted.intersection(c.customer_ids)]


# --- the side-by-side view ---------------------------------------------------------------------


@dataclass
class CustomerSummary:
    id: str
    name: str | None
    email: str | None
    phone: str | None
    created: datetime
    currency: str | None
    balance: int
    mrr: int
    live_subscriptions: int
    unpaid_invoices: int
    unpaid_amount: int
    last_activity: datetime
    metadata: dict[str, Any]


LIVE_STATUSES = ("active", "trialing", "past_due", "unpaid", "paused")
UNPAID_STATUSES = ("open", "uncollectible")


def summaries(customer_ids: list[str], *, session: Session) -> dict[str, CustomerSummary]:
    """What an admin weighs before a merge, for a handful of customers (one page of clusters)."""
    if not customer_ids:
        return {}
    ids = list(dict.fromkeys(customer_ids))
    sub_owner, inv_owner = col(Subscription.customer_id), col(Invoice.customer_id)
    subs: dict[str, int] = dict(session.execute(
        select(sub_owner, func.count())
        .where(sub_owner.in_(ids), col(Subscription.status).in_(LIVE_STATUSES))
        .group_by(sub_owner)
    ).all())
    sub_last: dict[str, datetime] = dict(session.execute(
        select(sub_owner, func.max(Subscription.created)).where(sub_owner.in_(ids)).group_by(sub_owner)
    ).all())
    unpaid = {r[0]: (r[1], r[2]) for r in session.execute(
        select(inv_owner, func.count(), func.coalesce(func.sum(Invoice.amount_remaining), 0))
        .where(inv_owner.in_(ids), col(Invoice.status).in_(UNPAID_STATUSES))
        .group_by(inv_owner)
    ).all()}
    inv_last: dict[str, datetime] = dict(session.execute(
        select(inv_owner, func.max(Invoice.created)).where(inv_owner.in_(ids)).group_by(inv_owner)
    ).all())
    out: dict[str, CustomerSummary] = {}
    for c in session.scalars(select(Customer).where(col(Customer.id).in_(ids))):
        times = [t for t in (c.created, sub_last.get(c.id), inv_last.get(c.id)) if t is not None]
        n_unpaid, amount = unpaid.get(c.id, (0, 0))
        out[c.id] = CustomerSummary(
            id=c.id, name=c.name, email=c.email, phone=c.phone, created=c.created, currency=c.currency,
            balance=c.balance, mrr=c.mrr, live_subscriptions=int(subs.get(c.id, 0)),
            unpaid_invoices=int(n_unpaid), unpaid_amount=int(amount), last_activity=max(times),
            metadata=dict(c.metadata_ or {}),
        )
    return out
