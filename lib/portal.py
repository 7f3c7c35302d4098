"""Customer Portal links: build the session request, call the gateway, audit every attempt, bulk links, CSV.

Stripe creates portal sessions only through the API, they are short-lived and cannot be listed later, and
Stripe does not record who made them: so every attempt is written to `audit_log` before the call and
completed after it (who, when, customer, flow, result, error). The URL itself is never stored.
"""

from __future__ import annotations

import math
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Final, Literal

from sqlmodel import Session, col, select

from lib import audit, columns
from lib import gateway as gw
from lib.access import ACTIONS, ROLES, Action
from lib.audit import AuditAction, AuditResult
from lib.auth import User, can
from lib.config import Settings, get_settings
from lib.export import csv_text
from lib.gateway import GatewayError, PortalSession
from lib.gateway.billing_portal import FlowData, FlowType, SessionCreate
from lib.inputs import http_url_problem, printable
from lib.models import Customer, Invoice, Subscription, SubscriptionItem, from_ts, utcnow
from lib.money import currency_code, major

PORTAL: Final = "portal"
Flow = Literal["portal", FlowType]  # the portal's home, or one task (flow_data)
FLOWS: dict[str, str] = {
    PORTAL: "Portal home (everything the portal allows)",
    "payment_method_update": "Update payment method",
    "subscription_cancel": "Cancel a subscription",
    "subscription_update": "Change a subscription's plan",
}
SUBSCRIPTION_FLOWS = frozenset({"subscription_cancel", "subscription_update"})
LOCALES: tuple[str, ...] = (
    "auto", "en", "en-GB", "de", "fr", "es", "es-419", "it", "nl", "pt", "pt-BR", "sv", "da", "nb", "fi",
    "pl", "cs", "ja", "ko", "zh", "zh-TW",
)


class PortalErrorKind(StrEnum):
    """Why a link could not be made (the page keys its advice and buttons on it)."""

    REFUSED = "refused"  # the role may not make links
    BAD_INPUT = "bad_input"  # a return URL or subscription choice the user must correct
    NOT_CONFIGURED = "not_configured"  # no portal configuration in this mode, or an unknown one
    CUSTOMER_MISSING = "customer_missing"
    SUBSCRIPTION_NOT_CUSTOMERS = "subscription_not_customers"
    SUBSCRIPTION_MISSING = "subscription_missing"
    SUBSCRIPTION_ENDED = "subscription_ended"
    FLOW_DISABLED = "flow_disabled"  # the configuration does not allow this flow
    RATE_LIMITED = "rate_limited"
    NETWORK = "network"
    AUTH = "auth"
    PERMISSION = "permission"
    SERVER = "server"
    INVALID = "invalid"  # anything else Stripe refused


# Kinds where the very same request may simply be sent again: Stripe kept no result for it.
RETRY_SAME_KEY = frozenset({PortalErrorKind.RATE_LIMITED, PortalErrorKind.NETWORK})
# Kinds that would fail every other customer of a bulk run the same way.
FATAL_FOR_BULK = frozenset({PortalErrorKind.NOT_CONFIGURED, PortalErrorKind.AUTH, PortalErrorKind.PERMISSION})
# Kinds where refreshing the customer from Stripe is the useful next step.
OFFER_REFRESH = frozenset({PortalErrorKind.CUSTOMER_MISSING, PortalErrorKind.SUBSCRIPTION_NOT_CUSTOMERS,
                           PortalErrorKind.SUBSCRIPTION_MISSING, PortalErrorKind.SUBSCRIPTION_ENDED})
MAX_WORKERS = 32
EXPIRY_NOTE = (
    "Portal links expire soon after they are made (minutes, not days). Make the link right before you send "
    "it; if the customer opens it late they will need a new one."
)


@dataclass(frozen=True)
class PortalRequest:
    """What the user asked for; `params()` is exactly what is sent to Stripe."""

    customer_id: str
    flow: Flow = PORTAL
    subscription_id: str | None = None
    locale: str = "auto"
    return_url: str | None = None  # None: Settings.portal_return_url
    configuration_id: str | None = None  # None: Settings.portal_configuration_id (empty: Stripe's default)

    def params(self, settings: Settings | None = None) -> SessionCreate:
        s = settings or get_settings()
        params: SessionCreate = {
            "customer": self.customer_id,
            "return_url": (self.return_url or s.portal_return_url).strip(),
        }
        if self.locale and self.locale != "auto":
            params["locale"] = self.locale
        configuration = (self.configuration_id or s.portal_configuration_id or "").strip()
        if configuration:
            params["configuration"] = configuration
        if self.flow != PORTAL:
            flow: FlowData = {"type": self.flow}
            if self.flow == "subscription_cancel":
                flow["subscription_cancel"] = {"subscription": self.subscription_id}
            elif self.flow == "subscription_update":
                flow["subscription_update"] = {"subscription": self.subscription_id}
            params["flow_data"] = flow
        return params


@dataclass(frozen=True)
class PortalLink:
    """A link that was just made: shown once, never stored."""

    url: str
    session_id: str
    customer_id: str
    flow: str
    created_at: datetime
    audit_id: int | None


@dataclass
class PortalError(Exception):
    """A link could not be made; `message` says why and what to do. Nothing was changed in Stripe."""

    kind: PortalErrorKind
    message: str
    audit_id: int | None = None

    def __str__(self) -> str:
        return self.message

    @property
    def retry_same_key(self) -> bool:
        """True when 'Try again' should resend the same request (same idempotency key)."""
        return self.kind in RETRY_SAME_KEY

    @property
    def offer_refresh(self) -> bool:
        """True when refreshing the customer from Stripe is the useful next step."""
        return self.kind in OFFER_REFRESH


# What to do when Stripe could not be asked, or refused the key: the same advice whatever the customer
# (checked in this order: the first class the error is an instance of).
ADVICE: dict[type[GatewayError], tuple[PortalErrorKind, str]] = {
    gw.RateLimited: (PortalErrorKind.RATE_LIMITED,
                     "Stripe is rate-limiting requests right now. Wait a minute, then click Try again (the same "
                     "request is resent safely). No link was made."),
    gw.NetworkError: (PortalErrorKind.NETWORK,
                      "Stripe could not be reached (network error). Check the server's internet connection or "
                      "STRIPE_API_BASE, then click Try again. No link was made."),
    gw.AuthFailed: (PortalErrorKind.AUTH,
                    "Stripe rejected the API key: ask an admin to check STRIPE_API_KEY in the server's settings (it "
                    "may be revoked, expired or for another account). No link was made."),
    gw.PermissionDenied: (PortalErrorKind.PERMISSION,
                          "The restricted API key may not create portal sessions. In the Stripe Dashboard → "
                          "Developers → API keys, edit the key and give it Write access to \"Customer portal\" "
                          "(billing portal sessions), then try again. No link was made."),
    gw.ServerError: (PortalErrorKind.SERVER,
                     "Stripe had an internal error. Make the link again in a minute. No link was made."),
}


def new_attempt_key() -> str:
    """A fresh idempotency key for one 'make link' click (a retry of that attempt reuses it)."""
    return f"portal-{uuid.uuid4().hex}"


def portal_error(exc: GatewayError, req: PortalRequest, settings: Settings | None = None) -> PortalError:
    """Turn a gateway error into portal advice: where to configure the portal, which permission is missing…"""
    s = settings or get_settings()
    text = exc.user_message or ""
    param = exc.param or ""
    lowered = text.lower()
    if "no configuration provided" in lowered or "portal settings" in lowered or (
        "default configuration" in lowered and "not been created" in lowered
    ):
        return PortalError(PortalErrorKind.NOT_CONFIGURED, (
            f"The Customer Portal is not set up in {s.key_mode} mode, so Stripe cannot make links. Configure "
            f"and save it in the Stripe Dashboard → Settings → Billing → Customer portal "
            f"({s.dashboard_path}settings/billing/portal), or set PORTAL_CONFIGURATION_ID to an existing "
            "portal configuration id (bpc_…). No link was made."
        ))
    missing = isinstance(exc, gw.NotFound)
    invalid = isinstance(exc, gw.InvalidRequest)
    if param == "configuration" or (missing and "configuration" in lowered):
        configured = req.configuration_id or s.portal_configuration_id
        return PortalError(PortalErrorKind.NOT_CONFIGURED, (
            f"Stripe has no portal configuration {configured!r} in {s.key_mode} mode. Fix "
            "PORTAL_CONFIGURATION_ID (or the configuration id you typed) to an id listed under Stripe "
            f"Dashboard → Settings → Billing → Customer portal ({s.dashboard_path}settings/billing/portal), "
            "or clear it to use the default configuration. No link was made."
        ))
    if invalid and "feature" in lowered and ("disabled" in lowered or "not enabled" in lowered):
        return PortalError(PortalErrorKind.FLOW_DISABLED, (
            f"The portal configuration in use does not allow this ({FLOWS.get(req.flow, req.flow)}): Stripe says "
            f"\"{text.rstrip('.')}\". Turn the feature on in the Stripe Dashboard → Settings → Billing → Customer "
            f"portal ({s.dashboard_path}settings/billing/portal), or choose another flow. No link was made."
        ))
    if (missing or invalid) and "subscription" in (param + lowered) and req.subscription_id:
        if missing or "no such subscription" in lowered:
            return PortalError(PortalErrorKind.SUBSCRIPTION_MISSING, (
                f"Subscription {req.subscription_id} no longer exists in Stripe. Refresh this customer to "
                "update the cache, then pick another subscription. No link was made."
            ))
        if "belong" in lowered:
            return PortalError(PortalErrorKind.SUBSCRIPTION_NOT_CUSTOMERS, (
                f"Subscription {req.subscription_id} is not a subscription of customer {req.customer_id} "
                "(Stripe says so). Pick one of this customer's subscriptions; refresh the customer if the list "
                "looks wrong. No link was made."
            ))
        return PortalError(PortalErrorKind.SUBSCRIPTION_ENDED, (
            f"Stripe cannot make this link for subscription {req.subscription_id}: {text.rstrip('.')}. Pick a "
            "live subscription, or refresh the customer if the list looks out of date. No link was made."
        ))
    if missing or (invalid and "customer" in param + lowered and "deleted" in lowered):
        return PortalError(PortalErrorKind.CUSTOMER_MISSING, (
            f"Customer {req.customer_id} does not exist in Stripe any more (deleted, or it belongs to the other "
            "mode). Refresh this customer so the cache shows it as deleted. No link was made."
        ))
    for error_class, (kind, advice) in ADVICE.items():
        if isinstance(exc, error_class):
            return PortalError(kind, advice)
    return PortalError(PortalErrorKind.INVALID, f"Stripe refused the request: {text} No link was made.")


def refuse(user: User, action: Action, *, session: Session, customer_id: str | None = None,
           flow: str | None = None, details: dict[str, Any] | None = None) -> PortalError:
    """Record a refused attempt and return the message to show."""
    allowed = [r for r in ROLES if r in ACTIONS[action]]  # from the role matrix, so the advice never drifts
    who = " or ".join(filter(None, [", ".join(allowed[:-1]), allowed[-1]]))
    message = f"Your role ({user.role_label}) may not do this: it needs {who}. Ask an admin for access."
    row = audit.start(session=session, actor=user.email, role=user.role_label, action=action,
                      customer_id=customer_id, flow=flow, details=details)
    audit.finish(row, session=session, result=AuditResult.REFUSED, error=message)
    return PortalError(PortalErrorKind.REFUSED, message, audit_id=row.id)


def return_url_problem(return_url: str | None) -> str | None:
    """Why a typed return URL cannot be sent (not an absolute http(s) URL with a host, or it holds spaces or
    control characters); None when it is fine or empty (empty: PORTAL_RETURN_URL is used)."""
    url = (return_url or "").strip()
    problem = http_url_problem(url) if url else None
    return f"The return URL {url!r} {problem}" if problem else None


def _check_request(req: PortalRequest, *, session: Session) -> str | None:
    """Problems found before calling Stripe (bad input, a subscription the cache says is someone else's)."""
    if req.flow not in FLOWS:
        return f"Unknown portal flow {req.flow!r}: choose one of {', '.join(FLOWS)}."
    problem = return_url_problem(req.return_url)
    if problem:
        return problem
    if req.flow in SUBSCRIPTION_FLOWS:
        if not req.subscription_id:
            return "Choose the subscription this link is for."
        sub = session.get(Subscription, req.subscription_id)
        if sub is not None and sub.customer_id != req.customer_id:
            return (
                f"Subscription {req.subscription_id} belongs to customer {sub.customer_id}, not "
                f"{req.customer_id}. Pick one of this customer's subscriptions."
            )
    return None


def create_link(
    req: PortalRequest, *, user: User, session: Session, idempotency_key: str, settings: Settings | None = None,
) -> PortalLink:
    """Make one portal link: role check, audit 'started', Stripe call, audit result. Raises PortalError."""
    s = settings or get_settings()
    if not can(user, "portal_link"):
        raise refuse(user, "portal_link", session=session, customer_id=req.customer_id, flow=req.flow)
    problem = _check_request(req, session=session)
    params = req.params(s)
    row = audit.start(
        session=session, actor=user.email, role=user.role_label, action=AuditAction.PORTAL_LINK,
        customer_id=req.customer_id, object_id=req.subscription_id, flow=req.flow,
        details={"locale": params.get("locale", "auto"), "return_url": printable(params["return_url"]),
                 "configuration": params.get("configuration"), "idempotency_key": idempotency_key},
    )
    if problem:
        kind = (PortalErrorKind.SUBSCRIPTION_NOT_CUSTOMERS if "belongs to customer" in problem
                else PortalErrorKind.BAD_INPUT)
        audit.finish(row, session=session, result=AuditResult.FAILED, error=problem)
        raise PortalError(kind, problem, audit_id=row.id)
    try:
        made = gw.billing_portal.create_session(params, idempotency_key=idempotency_key, settings=s)
    except GatewayError as exc:
        err = portal_error(exc, req, s)
        audit.finish(row, session=session, result=AuditResult.FAILED, error=err.message,
                     details={"stripe_status": exc.status, "stripe_code": exc.code, "request_id": exc.request_id})
        err.audit_id = row.id
        raise err from None
    audit.finish(row, session=session, result=AuditResult.SUCCEEDED, details={"session_id": made.id})
    return PortalLink(url=made.url, session_id=made.id, customer_id=req.customer_id, flow=req.flow,
                      created_at=from_ts(made.created) or utcnow(), audit_id=row.id)


# --- cache reads the widgets need ---------------------------------------------------------------


@dataclass(frozen=True)
class SubscriptionChoice:
    id: str
    label: str


def subscription_choices(customer_id: str, *, session: Session) -> list[SubscriptionChoice]:
    """The customer's not-yet-ended subscriptions from the cache, labelled for a picker."""
    subs = session.exec(
        select(Subscription)
        .where(Subscription.customer_id == customer_id)
        .where(col(Subscription.status).not_in(["canceled", "incomplete_expired"]))
        .order_by(col(Subscription.created).desc())
        .limit(50)
    ).all()
    names: dict[str, list[str]] = {}
    if subs:
        items = session.exec(
            select(SubscriptionItem.subscription_id, SubscriptionItem.product_name)
            .where(col(SubscriptionItem.subscription_id).in_([sub.id for sub in subs]))
        ).all()
        for sub_id, product in items:
            if product:
                names.setdefault(sub_id, []).append(product)
    return [SubscriptionChoice(sub.id, f"{', '.join(names.get(sub.id, [])[:3]) or 'subscription'} · "
                                       f"{sub.status} · {sub.id}") for sub in subs]


def customer_label(customer_id: str, *, session: Session) -> tuple[str, str | None]:
    """(name to greet, email) for the email text; falls back to the id when the cache has no name."""
    cust = session.get(Customer, customer_id)
    if cust is None:
        return customer_id, None
    return (cust.name or cust.email or customer_id), cust.email


def email_text(name: str, link: PortalLink) -> str:
    """An email-ready block the user can paste: greeting, what the link does, the link, the expiry."""
    what = {
        PORTAL: "manage your billing details and subscription",
        "payment_method_update": "update the card or payment method we charge",
        "subscription_cancel": "cancel your subscription",
        "subscription_update": "change your subscription plan",
    }[link.flow]
    return (
        f"Hi {name},\n\n"
        f"You can {what} securely on our billing portal (hosted by Stripe):\n\n"
        f"{link.url}\n\n"
        "For your security this link expires shortly. If it no longer works, reply to this email and we "
        "will send you a fresh one.\n\n"
        "Thank you!"
    )


# --- bulk links for finance -----------------------------------------------------------------------


@dataclass
class BulkRow:
    customer_id: str
    name: str
    email: str
    amount_due: dict[str, int]  # currency → minor units still due on the selected invoices
    invoice_ids: list[str]
    link: str = ""
    made_at: datetime | None = None  # UTC
    error: str = ""

    def amounts(self) -> list[tuple[str | None, int | None]]:
        """(currency, minor units) due, one per currency in code order; one empty pair when nothing is due."""
        return sorted(self.amount_due.items()) or [(None, None)]


BULK_COLUMNS = tuple(columns.BULK_LINKS)


@dataclass
class BulkResult:
    run_id: str
    rows: list[BulkRow] = field(default_factory=list)
    requests: int = 0
    seconds: float = 0.0
    missing_invoices: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def made(self) -> int:
        return sum(1 for r in self.rows if r.link)

    @property
    def failed(self) -> int:
        return sum(1 for r in self.rows if r.error)

    def csv(self) -> str:
        """CSV for finance's mail merge: customer, name, email, amount due (major units) and its currency, link,
        when made (ISO 8601), error — one line per customer and currency (a customer owing USD and EUR has
        two lines with the same link). Written by lib/export, so a name like `=HYPERLINK(…)` stays text."""
        return csv_text(BULK_COLUMNS, (
            [r.customer_id, r.name, r.email, major(amount, cur), currency_code(cur).upper() or None, r.link,
             r.made_at, r.error]
            for r in self.rows for cur, amount in r.amounts()), headers=columns.BULK_LINKS)


def _bulk_targets(invoice_ids: list[str], *, session: Session) -> tuple[list[BulkRow], list[str]]:
    """One row per customer of the selected invoices, amounts summed per currency, in selection order."""
    found: dict[str, Invoice] = {}
    for start in range(0, len(invoice_ids), 500):
        chunk = invoice_ids[start:start + 500]
        for hit in session.exec(select(Invoice).where(col(Invoice.id).in_(chunk))).all():
            found[hit.id] = hit
    missing = [i for i in invoice_ids if i not in found]
    by_customer: dict[str, list[Invoice]] = {}
    for inv_id in dict.fromkeys(invoice_ids):  # each invoice once, in selection order
        inv = found.get(inv_id)
        if inv is not None:
            by_customer.setdefault(inv.customer_id, []).append(inv)
    customers: dict[str, Customer] = {}
    ids = list(by_customer)
    for start in range(0, len(ids), 500):
        for known in session.exec(select(Customer).where(col(Customer.id).in_(ids[start:start + 500]))).all():
            customers[known.id] = known
    rows = []
    for cid, invs in by_customer.items():
        totals: dict[str, int] = {}
        for inv in invs:
            totals[inv.currency] = totals.get(inv.currency, 0) + (inv.amount_remaining or inv.amount_due)
        cust = customers.get(cid)
        email = (cust.email if cust else None) or next((i.customer_email for i in invs if i.customer_email), "")
        rows.append(BulkRow(
            customer_id=cid, name=(cust.name or "") if cust else "", email=email or "",
            amount_due=totals,
            invoice_ids=[i.id for i in invs],
        ))
    return rows, missing


def _send(params: SessionCreate, key: str, settings: Settings, max_attempts: int) -> PortalSession | GatewayError:
    """One bulk request (run in a worker thread; the gateway's shared bucket keeps the whole run in budget)."""
    try:
        return gw.billing_portal.create_session(params, idempotency_key=key, settings=settings,
                                                max_attempts=max_attempts)
    except GatewayError as exc:
        return exc


def bulk_links(
    invoice_ids: Iterable[str], *, user: User, session: Session, settings: Settings | None = None,
    progress: Callable[[int, int], None] | None = None, return_url: str | None = None, max_attempts: int = 6,
) -> BulkResult:
    """'Update payment method' links for each selected invoice's customer, within the request budget.

    Requests go out through the gateway's process-wide token bucket (Settings.request_budget per second) from
    worker threads (about budget/2 in flight), so the run is as fast as the budget allows even when Stripe
    answers slowly. Each
    customer gets its own audit row (correlated to one bulk row) and its own idempotency key for this run, so
    the gateway's retries of a 429 or a network blip are applied once. A configuration problem (portal not
    set up, key rejected, permission missing) stops the run at the first answer instead of failing 200 times.
    """
    s = settings or get_settings()
    ids = list(dict.fromkeys(invoice_ids))
    run_id = uuid.uuid4().hex[:16]
    if not can(user, "bulk_portal_links"):
        raise refuse(user, "bulk_portal_links", session=session, flow="payment_method_update",
                     details={"invoices": len(ids)})
    problem = return_url_problem(return_url)
    if problem:  # before any audit row or request: the whole run would send it
        raise PortalError(PortalErrorKind.BAD_INPUT, problem)
    result = BulkResult(run_id=run_id)
    started = time.monotonic()
    sent_before = gw.requests_sent()
    rows, missing = _bulk_targets(ids, session=session)
    result.rows, result.missing_invoices = rows, missing
    parent = audit.start(
        session=session, actor=user.email, role=user.role_label, action=AuditAction.BULK_PORTAL_LINKS,
        flow="payment_method_update", correlation_id=run_id,
        details={"invoices": len(ids), "customers": len(rows), "missing_invoices": missing[:50]},
    )
    # Enough requests in flight to use the whole budget when Stripe takes ~0.5 s to answer.
    workers = max(1, min(MAX_WORKERS, math.ceil(s.request_budget / 2)))
    total, done = len(rows), 0
    fatal: str | None = None
    queue = deque(rows)
    in_flight: dict[Future, tuple[BulkRow, PortalRequest, Any]] = {}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        while queue or in_flight:
            while queue and fatal is None and len(in_flight) < workers:
                row = queue.popleft()
                req = PortalRequest(row.customer_id, "payment_method_update", return_url=return_url)
                params = req.params(s)
                key = f"portal-bulk-{run_id}-{row.customer_id}"
                arow = audit.start(
                    session=session, actor=user.email, role=user.role_label, action=AuditAction.PORTAL_LINK,
                    customer_id=row.customer_id, flow="payment_method_update", correlation_id=run_id,
                    details={"bulk": True, "invoice_ids": row.invoice_ids[:20], "idempotency_key": key,
                             "return_url": params["return_url"]},
                )
                in_flight[pool.submit(_send, params, key, s, max_attempts)] = (row, req, arow)
            if not in_flight:
                break  # stopped: the rest is not attempted
            finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            for fut in finished:
                row, req, arow = in_flight.pop(fut)
                outcome = fut.result()
                if isinstance(outcome, GatewayError):
                    err = portal_error(outcome, req, s)
                    row.error = err.message
                    if err.kind in FATAL_FOR_BULK:
                        fatal = err.message
                    audit.finish(arow, session=session, result=AuditResult.FAILED, error=err.message,
                                 details={"stripe_status": outcome.status, "request_id": outcome.request_id})
                else:
                    row.link = outcome.url
                    row.made_at = from_ts(outcome.created) or utcnow()
                    audit.finish(arow, session=session, result=AuditResult.SUCCEEDED,
                                 details={"session_id": outcome.id})
                done += 1
                if progress:
                    progress(done, total)
    for row in queue:
        row.error = "Not attempted: " + (fatal or "the run stopped.")
    result.seconds = round(time.monotonic() - started, 3)
    result.requests = gw.requests_sent() - sent_before
    failed = result.failed
    if failed and not result.made:
        result.error = fatal or (rows[0].error if rows else None)
    audit.finish(
        parent, session=session, result=AuditResult.SUCCEEDED if not failed else AuditResult.FAILED,
        error=None if not failed else f"{failed} of {total} links could not be made."
        + (f" {fatal}" if fatal else ""),
        details={"made": result.made, "failed": failed, "requests": result.requests, "seconds": result.seconds},
    )
    return result
