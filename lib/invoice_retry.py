"""Finance's "Retry now": charge a failed invoice again (Stripe's POST /v1/invoices/{id}/pay), typically after the
customer put a new card on file.

One call per click: the role is checked when it runs (lib/access.ACTIONS["retry_invoice"]: finance and admin),
an audit row is written before the Stripe call and completed after it, the call carries an idempotency key, and
the invoice's customer is then refreshed from Stripe into the cache (lib.sync.refresh_customer), so the worklist
shows the new state. Every outcome a user can meet ends in a `RetryOutcome` or a `RetryError` whose message says
what happened and what to do next.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from sqlmodel import Session

from lib import audit
from lib import gateway as gw
from lib.access import ACTIONS, ROLES
from lib.audit import AuditResult
from lib.auth import User, can
from lib.config import Settings, get_settings
from lib.declines import explain
from lib.models import Invoice
from lib.money import format_money
from lib.sync import refresh_customer

ACTION: Final = "retry_invoice"  # the role matrix's action and the audit rows' (AuditAction.RETRY_INVOICE)
RETRYABLE = ("open", "uncollectible")


class ErrorKind(StrEnum):
    """Why a retry did not collect the money (the page words its message on it)."""

    REFUSED = "refused"  # the role may not retry payments
    NOT_FOUND = "not_found"  # not in the cache
    NOT_RETRYABLE = "not_retryable"  # the cache says it is not open
    DECLINED = "declined"  # the card was declined again
    ALREADY_PAID = "already_paid"  # Stripe says it is paid: the cache was behind
    NETWORK = "network"  # Stripe not reached, or rate-limiting: click again (same request)
    SERVER = "server"  # Stripe's internal error: click again in a minute
    STRIPE = "stripe"  # anything else Stripe refused


@dataclass
class RetryError(Exception):
    """The retry did not collect the money; `message` says why and what to do."""

    kind: ErrorKind
    message: str
    audit_id: int | None = None

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class RetryOutcome:
    """The invoice was paid. `cache_note` is set when the cache could not be refreshed afterwards."""

    invoice_id: str
    customer_id: str
    message: str
    audit_id: int | None
    cache_note: str | None = None


def idempotency_key(invoice: Invoice, card_id: str | None) -> str:
    """One key per (invoice, attempt number, card to charge): a double click or a rerun sends the same request
    (Stripe answers it once), while a retry after another failure or with another card is a new request."""
    return f"invoice-pay-{invoice.id}-a{invoice.attempt_count}-{card_id or 'default'}"


def _refuse(user: User, invoice_id: str, customer_id: str | None, *, session: Session) -> RetryError:
    allowed = " or ".join(r for r in ROLES if r in ACTIONS[ACTION])
    message = f"Your role ({user.role_label}) may not retry payments: it needs {allowed}. Ask an admin for access."
    row = audit.start(session=session, actor=user.email, role=user.role_label, action=ACTION,
                      customer_id=customer_id, object_id=invoice_id)
    audit.finish(row, session=session, result=AuditResult.REFUSED, error=message)
    return RetryError(ErrorKind.REFUSED, message, audit_id=row.id)


def _failure_message(exc: gw.GatewayError, invoice: Invoice) -> tuple[ErrorKind, str]:
    """What to tell finance about a retry Stripe did not complete."""
    if isinstance(exc, gw.CardDeclined):
        d = explain(exc.code)
        return ErrorKind.DECLINED, (f"The card was declined again ({d.code}): {d.meaning} Nothing was charged. "
                                    f"{d.next_step}")
    if exc.code == "invoice_already_paid" or "already paid" in exc.user_message.lower():
        return ErrorKind.ALREADY_PAID, (f"Invoice {invoice.id} is already paid in Stripe; the cache was behind. "
                                        "Nothing was charged.")
    if isinstance(exc, gw.NetworkError | gw.RateLimited):
        return ErrorKind.NETWORK, (f"{exc.user_message} Nothing was charged; click Retry now again (the same "
                                   "request is sent, so it cannot charge twice).")
    if isinstance(exc, gw.ServerError):
        return ErrorKind.SERVER, ("Stripe had an internal error and did not confirm the payment. Click Retry now "
                                  "again in a minute (the same request is sent, so it cannot charge twice).")
    return ErrorKind.STRIPE, f"Stripe refused the retry: {exc.user_message} Nothing was charged."


def _refresh(customer_id: str, settings: Settings) -> str | None:
    """Bring the customer's invoices and cards up to date in the cache; a failure only delays it."""
    try:
        refresh_customer(customer_id, settings=settings)
    except Exception as exc:  # noqa: BLE001 - Stripe holds the truth; only the cache lags
        text = exc.user_message if isinstance(exc, gw.GatewayError) else "the cache database did not answer"
        return f"The cache could not be refreshed ({text}); it catches up with the next sync."
    return None


def retry_invoice(invoice_id: str, *, user: User, session: Session, card_id: str | None = None,
                  settings: Settings | None = None) -> RetryOutcome:
    """Charge a failed invoice now. `card_id`: the card the page showed as the one a retry would charge (part of
    the idempotency key, and audited); Stripe charges its own choice of default either way.

    Raises RetryError (refused, not_found, not_retryable, declined, already_paid, network, server, stripe);
    every attempt that reaches Stripe leaves a started → succeeded/failed audit row.
    """
    s = settings or get_settings()
    invoice = session.get(Invoice, invoice_id)
    if not can(user, ACTION):  # at the moment it runs, whatever the page showed
        raise _refuse(user, invoice_id, invoice.customer_id if invoice else None, session=session)
    if invoice is None:
        raise RetryError(ErrorKind.NOT_FOUND,
                         f"Invoice {invoice_id} is not in the cache. Refresh the customer or run a sync.")
    if invoice.status not in RETRYABLE:
        raise RetryError(ErrorKind.NOT_RETRYABLE, f"Invoice {invoice_id} is {invoice.status}, not open: there is "
                                                  "nothing to retry. Refresh the customer if that looks wrong.")
    key = idempotency_key(invoice, card_id)
    amount = format_money(invoice.amount_remaining, invoice.currency)
    details: dict[str, Any] = {"idempotency_key": key, "amount": amount, "card": card_id,
                               "attempt_count": invoice.attempt_count}
    row = audit.start(session=session, actor=user.email, role=user.role_label, action=ACTION,
                      customer_id=invoice.customer_id, object_id=invoice_id, details=details)
    customer_id = invoice.customer_id
    try:
        paid = gw.invoices.pay(invoice_id, idempotency_key=key, settings=s)
    except gw.GatewayError as exc:
        kind, message = _failure_message(exc, invoice)
        audit.finish(row, session=session, result=AuditResult.FAILED, error=message,
                     details={"stripe_status": exc.status, "stripe_code": exc.code, "request_id": exc.request_id})
        if kind in (ErrorKind.DECLINED, ErrorKind.ALREADY_PAID):  # Stripe's state changed (one more attempt, or paid)
            note = _refresh(customer_id, s)
            message += f" {note}" if note else ""
        raise RetryError(kind, message, audit_id=row.id) from None
    status = paid.get("status")
    audit.finish(row, session=session, result=AuditResult.SUCCEEDED, details={"invoice_status": status})
    note = _refresh(customer_id, s)
    message = (f"Invoice {invoice_id} is paid: {amount} collected." if status == "paid"
               else f"Stripe accepted the retry of invoice {invoice_id}; its status is now {status}.")
    return RetryOutcome(invoice_id=invoice_id, customer_id=customer_id, message=message, audit_id=row.id,
                        cache_note=note)
